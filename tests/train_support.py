"""Helpers for the training tests: tiny synthetic image sets on disk and recipe YAML files."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
CLASSES = 3


def write_images(folder: Path, count: int, *, label: int | None = None, size: tuple[int, int] = (20, 24),
                 seed: int = 0, suffix: str = ".png") -> list[Path]:
    """`count` small RGB images; with a `label`, each class has its own colour range (so classes are learnable)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        base = rng.random((size[1], size[0], 3)) * 60
        if label is not None:
            base[..., label % 3] += 150
        path = folder / f"{i:03d}{suffix}"
        Image.fromarray(base.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


class TinyData:
    """An imagefolder (3 classes x 8 images), an unlabeled folder (8 images) and a list file (labels on half)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.imagefolder = root / "labeled"
        self.files = {c: write_images(self.imagefolder / f"class{c}", 8, label=c, seed=c) for c in range(CLASSES)}
        self.unlabeled = root / "unlabeled"
        write_images(self.unlabeled / "nested", 8, size=(32, 32), seed=10, suffix=".jpg")
        self.list_file = root / "list.txt"
        lines = [f"{p.relative_to(root)} {c}" if i % 2 == 0 else str(p.relative_to(root))
                 for c, paths in self.files.items() for i, p in enumerate(paths)]
        self.list_file.write_text("# path [label]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def tiny_data(tmp_path: Path) -> TinyData:
    return TinyData(tmp_path / "data")


def base_recipe(data: TinyData, **changes: Any) -> dict[str, Any]:
    """A distillation recipe that trains in about a second on CPU; `changes` replace top-level keys."""
    recipe: dict[str, Any] = {
        "name": "tiny_student",
        "student": {"model": "test_resnet", "model_args": {"num_classes": CLASSES}},
        "teacher": {"model": "test_efficientnet", "model_args": {"num_classes": CLASSES}, "bn": "train"},
        "loss": {"type": "symmetric_kl"},
        "data": {"input_size": 16, "augment": {"pad_crop": 2, "hflip": True},
                 "eval": {"source": f"imagefolder:{data.imagefolder}"}},
        "batch_size": 8,
        "optimizer": {"momentum": 0.9, "nesterov": True, "no_decay_norm_bias": True},
        "stages": [{"name": "stage1", "epochs": 2, "lr": 0.05, "warmup_epochs": 0.5, "weight_decay": 1.0e-4,
                    "train": [{"source": f"imagefolder:{data.imagefolder}", "labels": False},
                              {"source": f"folder:{data.unlabeled}"}]}],
        "runtime": {"workers": 0, "seed": 0, "checkpoint_every": 3},
    }
    recipe.update(copy.deepcopy(changes))
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def python_env() -> dict[str, str]:
    """The environment for a child Python that imports this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


def run_module(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=python_env(),
                          timeout=timeout, cwd=REPO_ROOT)
