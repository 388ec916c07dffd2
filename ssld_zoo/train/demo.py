"""`ssld-zoo demo`: label-free SSLD on real CIFAR-10 with a real off-the-shelf teacher, sized for a CPU.

It runs the repository's CIFAR recipes with smaller numbers (`--images-per-class`, `--epochs`):

1. recipe (b), `recipes/cifar10/b_ssld.yaml`: ResNet-20 learns from akamaster's ResNet-56 without labels;
2. recipe (a), `recipes/cifar10/a_supervised.yaml`: the same ResNet-20 trained on the same images with labels;
3. reloads each student with `ssld_zoo.create(..., pretrained=RUN_DIR/...)` and evaluates it, and the teacher, on
   the CIFAR-10 test images;
4. prints a table and the commands that run the full recipes on a GPU.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "cifar10"
TEACHER = "resnet56_cifar"


@dataclass(frozen=True)
class Row:
    model: str
    labels_used: str
    top1: float
    agreement: float | None
    source: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `demo` command's arguments."""
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder holding cifar10/ (default: "
                                                                 "$SSLD_ZOO_DATA)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR", help="run folders (default: "
                                                                                          "runs/demo)")
    parser.add_argument("--images-per-class", type=int, default=1000, metavar="N",
                        help="training images per class (default 1000 of 5000)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each run (default 4; the full recipes: 200)")
    parser.add_argument("--eval-per-class", type=int, default=1000, metavar="N",
                        help="test images per class to evaluate on (default 1000: the whole test set)")


def run(args: argparse.Namespace) -> list[Row]:
    """Run the demo as `args` say, print the table, and return its rows."""
    rows = run_demo(args.out, data_root=args.data, images_per_class=args.images_per_class, epochs=args.epochs,
                    eval_per_class=args.eval_per_class)
    print(format_table(rows, args))
    return rows


def run_demo(out: Path, *, data_root: Path | None, images_per_class: int, epochs: int,
             eval_per_class: int) -> list[Row]:
    """Distil and train the CPU-sized runs in `out`, then evaluate the reloaded students and the teacher."""
    import ssld_zoo
    from ..data.cifar import load_cifar10
    from .engine import train
    from .recipe import apply_overrides, load_recipe, parse_recipe

    test = load_cifar10("test", data_root)  # fails first, with one clear message, when the data is missing
    index = test.indices(f"per_class:{eval_per_class}")
    images, labels = test.decode_all(index), test.labels[index]
    teacher = ssld_zoo.create(TEACHER, pretrained=True, data_root=data_root)
    teacher_pred = predict(teacher, images)
    rows = [Row(f"{TEACHER} (teacher)", "50k (akamaster)", accuracy(teacher_pred, labels), None,
                "akamaster/pytorch_resnet_cifar10")]
    for recipe_file, labels_used in (("b_ssld.yaml", "none"), ("a_supervised.yaml", f"{10 * images_per_class}")):
        base = load_recipe(RECIPES / recipe_file)
        raw = apply_overrides(base.raw, [f"data.eval.subset=per_class:{eval_per_class}", f"stages.0.epochs={epochs}",
                                         f"stages.0.train.0.subset=per_class:{images_per_class}",
                                         "stages.0.warmup_epochs=0.2", "runtime.checkpoint_every=100000"])
        raw["stages"] = raw["stages"][:1]  # stage 2 belongs to the full recipe
        recipe = parse_recipe(raw, path=base.path)
        run_dir = out / f"{recipe.name}-{images_per_class}pc-{epochs}ep-eval{eval_per_class}"
        start = time.perf_counter()
        folder = run_dir / recipe.name
        if not (folder / "model.safetensors").is_file():  # a finished run with the same settings is reused
            folder = train(recipe, run_dir, resume=(run_dir / "checkpoint.pt").is_file(), data_root=data_root,
                           device="cpu")
        model_name = recipe.name.split(".")[0]
        student = ssld_zoo.create(model_name, pretrained=str(folder))
        pred = predict(student, images)
        rows.append(Row(f"{recipe.name} ({recipe_file[0]})", labels_used, accuracy(pred, labels),
                        accuracy(pred, teacher_pred), f"{folder} ({time.perf_counter() - start:.0f} s)"))
    return rows


def predict(model, images: "np.ndarray", batch: int = 500) -> "np.ndarray":  # type: ignore[no-untyped-def]
    """Class predictions for uint8 NHWC images with the model's own normalisation."""
    import numpy as np
    import torch
    cfg = model.pretrained_cfg
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float().div_(255)
            out.append(model((x - mean) / std).argmax(-1).numpy())
    return np.concatenate(out)


def accuracy(pred: "np.ndarray", target: "np.ndarray") -> float:
    return float((pred == target).mean() * 100)


def format_table(rows: Sequence[Row], args: argparse.Namespace) -> str:
    lines = [f"\nCIFAR-10 (re-encoded as JPEG q75, YoongiKim) test, {10 * args.eval_per_class} images; students "
             f"trained {args.epochs} epoch(s) on {10 * args.images_per_class} training images on the CPU:", "",
             f"| {'model':<44} | {'labels in training':<18} | {'top-1':>6} | {'agrees with teacher':>19} |",
             f"|{'-' * 46}|{'-' * 20}|{'-' * 8}|{'-' * 21}|"]
    for r in rows:
        agree = "" if r.agreement is None else f"{r.agreement:.2f}%"
        lines.append(f"| {r.model:<44} | {r.labels_used:<18} | {r.top1:>5.2f}% | {agree:>19} |")
    lines += ["", "The full recipes (200 epochs, all 50k images, stage 2 included) on a GPU:",
              "  ssld-zoo train recipes/cifar10/a_supervised.yaml --device cuda",
              "  ssld-zoo train recipes/cifar10/b_ssld.yaml --device cuda",
              "  ssld-zoo train recipes/cifar10/c_supervised_1k.yaml --device cuda",
              "  ssld-zoo train recipes/cifar10/d_ssld_1k_unlabeled.yaml --device cuda",
              "(several GPUs: torchrun --nproc_per_node N -m ssld_zoo.train RECIPE.yaml)"]
    return "\n".join(lines)
