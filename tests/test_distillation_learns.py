"""Distillation learns. A teacher that knows the tiny colour-coded classes (trained here with labels, 100% on them)
teaches a fresh student through the training engine on one fixed batch (every labelled image in one batch, no
augmentation, so each step sees the same images), without labels: the distillation loss falls by an order of
magnitude and the student's agreement with the teacher (top-1 classes, both in eval mode) climbs from chance to
nearly all the images. The same holds when the teacher's soft labels come from the cache instead of its forward pass.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_support import TinyData, base_recipe

from ssld_zoo.train.cache import write_cache
from ssld_zoo.train.engine import train
from ssld_zoo.train.recipe import parse_recipe

STEPS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TinyData:
    return TinyData(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def teacher(data: TinyData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_resnet trained with the labels until it classifies every image right; its Hub-layout folder."""
    raw = base_recipe(data, name="tiny_teacher", loss={"type": "ce"}, teacher=None, batch_size=6)
    raw["stages"] = [{"epochs": 4, "lr": 0.01, "train": [{"source": f"imagefolder:{data.imagefolder}"}]}]
    run = tmp_path_factory.mktemp("teacher")
    folder = train(parse_recipe(raw), run, device="cpu")
    assert curve(run, "eval_top1")[-1] == 100
    return folder


def distillation(data: TinyData, teacher: Path, **changes: Any) -> dict[str, Any]:
    """A label-free recipe: a fresh student, the teacher in eval mode, `STEPS` steps on one fixed batch."""
    raw = base_recipe(data, batch_size=24, teacher={"model": "test_resnet", "model_args": {"num_classes": 3},
                                                     "pretrained": str(teacher), "bn": "eval"}, **changes)
    raw["data"]["augment"] = {}
    raw["runtime"]["seed"] = 1  # not the teacher's initial weights
    raw["stages"] = [{"name": "distil", "epochs": STEPS, "lr": 0.05,
                      "train": [{"source": f"imagefolder:{data.imagefolder}", "labels": False}]}]
    return raw


def curve(run_dir: Path, key: str) -> list[float]:
    """`key` of every epoch record, i.e. after each step here."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in records if r["type"] == "epoch"]


def assert_learns(run_dir: Path) -> None:
    loss, agreement = curve(run_dir, "train_loss"), curve(run_dir, "agreement")
    assert len(loss) == STEPS
    assert loss[-1] < 0.1 * loss[0], loss  # the first epoch's loss is the fresh student's, before its step
    assert agreement[-1] >= 90 and agreement[-1] >= agreement[0] + 50, agreement  # 3 classes: chance is 33%


def test_online_distillation_lowers_the_loss_and_raises_agreement(data, teacher, tmp_path):
    train(parse_recipe(distillation(data, teacher)), tmp_path, device="cpu")
    assert_learns(tmp_path)


def test_cache_fed_distillation_lowers_the_loss_and_raises_agreement(data, teacher, tmp_path):
    raw = distillation(data, teacher, cache={"views": 1, "topk": 3, "dir": str(tmp_path / "cache")})
    write_cache(parse_recipe(raw), device="cpu")
    train(parse_recipe(dict(raw, soft_labels="cache")), tmp_path / "run", device="cpu")
    assert_learns(tmp_path / "run")
