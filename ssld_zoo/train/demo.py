"""`ssld-zoo demo`: the setting SSLD is about, on real CIFAR-10 with a real off-the-shelf teacher, sized for a CPU.

A few labeled images and many unlabeled ones. By default 1,000 of the 50,000 training images keep their labels
(100 per class) and the other 49,000 are unlabeled. The ResNet-20 students get the same number of optimizer steps of
the same batch size:

1. supervised: cross-entropy on the 1,000 labeled images (a smaller recipe (c), `c_supervised_1k.yaml`);
2. SSLD: akamaster's ResNet-56 teacher's predictions on all 50,000 images, no label used (a smaller stage 1 of
   recipe (d), `d_ssld_1k_unlabeled.yaml`);
3. with `--with-labeled-only`: SSLD on the 1,000 images alone, also without labels (what the unlabeled images add).

Each student is reloaded with `ssld_zoo.create(..., pretrained=RUN_DIR/...)` and evaluated on the full test set
with the teacher; `OUT/demo.png` shows top-1 against training images seen.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ssld_zoo.errors import SsldZooError

if TYPE_CHECKING:
    import numpy as np
    import torch

TEACHER = "resnet56_cifar"
PLOT_FILE = "demo.png"
RESULT_FILE = "demo.json"
PROMISED_MINUTES = 10  # the README's promise for the defaults on the 2-core project machine (docs/training.md)
CLASSES = 10
TRAIN_PER_CLASS = 5000
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The demo's sizes; `check` says whether the three students can get exactly the same number of steps."""

    labeled_per_class: int = 100
    unlabeled_per_class: int = TRAIN_PER_CLASS - 100  # the next images of every class, labels hidden
    epochs: int = 2  # epochs of the SSLD student over labeled + unlabeled images; the others run as many steps
    batch_size: int = 100
    eval_per_class: int = 1000  # final evaluation: 1000 per class is the whole test set
    curve_per_class: int = 100  # the curve's evaluations during training, on the first images of each class
    eval_every: int = 50  # steps between the curve's points
    labeled_only_ssld: bool = False  # a third student: SSLD on the labeled images alone

    def check(self) -> None:
        labeled, total = CLASSES * self.labeled_per_class, self.labeled_per_class + self.unlabeled_per_class
        if self.labeled_per_class <= 0 or self.unlabeled_per_class <= 0 or total > TRAIN_PER_CLASS:
            raise SsldZooError(f"--labeled-per-class and --unlabeled-per-class must be positive and add up to at most "
                               f"{TRAIN_PER_CLASS}, not {self.labeled_per_class} + {self.unlabeled_per_class}.")
        if self.unlabeled_per_class % self.labeled_per_class:
            raise SsldZooError(f"--unlabeled-per-class ({self.unlabeled_per_class}) must be a multiple of "
                               f"--labeled-per-class ({self.labeled_per_class}): the students must get the same "
                               "number of steps.")
        if self.batch_size <= 0 or labeled % self.batch_size:
            raise SsldZooError(f"--batch-size must divide the {labeled} labeled images, not {self.batch_size}: the "
                               "students must get the same number of steps.")
        for name in ("epochs", "eval_per_class", "curve_per_class", "eval_every"):
            if getattr(self, name) <= 0:
                raise SsldZooError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}.")

    @property
    def steps(self) -> int:
        return self.epochs * CLASSES * (self.labeled_per_class + self.unlabeled_per_class) // self.batch_size

    @property
    def labeled_epochs(self) -> int:
        """Epochs over the labeled images that make as many steps as `epochs` over labeled + unlabeled ones."""
        return self.epochs * (self.labeled_per_class + self.unlabeled_per_class) // self.labeled_per_class


@dataclass(frozen=True)
class Row:
    model: str
    trained_on: str
    labels_used: int
    top1: float
    agreement: float | None
    seconds: float
    folder: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `demo` command's arguments."""
    d = Settings()
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder holding cifar10/ (default: "
                                                                 "$SSLD_ZOO_DATA)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                        help="run folders, demo.png and demo.json (default: runs/demo)")
    parser.add_argument("--labeled-per-class", type=int, default=d.labeled_per_class, metavar="N",
                        help=f"training images per class that keep their labels (default {d.labeled_per_class})")
    parser.add_argument("--unlabeled-per-class", type=int, default=d.unlabeled_per_class, metavar="N",
                        help=f"the next training images per class, labels hidden (default {d.unlabeled_per_class}: "
                             f"the rest of the {TRAIN_PER_CLASS})")
    parser.add_argument("--epochs", type=int, default=d.epochs,
                        help=f"epochs of the SSLD student over labeled + unlabeled images (default {d.epochs}); the "
                             "other students run the same number of steps")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N",
                        help=f"batch size of every student (default {d.batch_size})")
    parser.add_argument("--eval-per-class", type=int, default=d.eval_per_class, metavar="N",
                        help="test images per class of the final evaluation (default 1000: the whole test set)")
    parser.add_argument("--curve-per-class", type=int, default=d.curve_per_class, metavar="N",
                        help=f"test images per class of the curve's evaluations (default {d.curve_per_class})")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, metavar="STEPS",
                        help=f"steps between the curve's points (default {d.eval_every})")
    parser.add_argument("--with-labeled-only", action="store_true",
                        help="add a third student: SSLD on the labeled images alone, without their labels (shows "
                             "what the unlabeled images add; about 4 more minutes at the defaults)")


def run(args: argparse.Namespace) -> list[Row]:
    """Run the demo as `args` say, print the table, and return its rows."""
    settings = Settings(labeled_per_class=args.labeled_per_class, unlabeled_per_class=args.unlabeled_per_class,
                        epochs=args.epochs, batch_size=args.batch_size,
                        eval_per_class=args.eval_per_class, curve_per_class=args.curve_per_class,
                        eval_every=args.eval_every, labeled_only_ssld=args.with_labeled_only)
    started = time.perf_counter()
    from ssld_zoo.console import command_line, resumable
    with resumable(command_line):  # the same command again reuses finished students and resumes the others
        rows, plot = run_demo(args.out, settings, data_root=args.data)
    seconds = time.perf_counter() - started
    print(format_table(rows, settings, seconds, plot))
    return rows


def student_recipes(settings: Settings) -> list[tuple[str, Any, str, int]]:
    """(recipe file, recipe, what it trains on, labels used) of each student, made from the CIFAR recipes."""
    from ssld_zoo.train.recipe import apply_overrides, load_recipe, parse_recipe
    s, labeled = settings, f"per_class:{settings.labeled_per_class}"
    n_labeled, n_unlabeled = CLASSES * s.labeled_per_class, CLASSES * s.unlabeled_per_class
    unlabeled = f"per_class:{s.labeled_per_class}:{s.labeled_per_class + s.unlabeled_per_class}"
    common = [f"batch_size={s.batch_size}", f"data.eval.subset=per_class:{s.curve_per_class}",
              "runtime.amp=bf16", "runtime.channels_last=true", "runtime.workers=0",
              f"runtime.eval_every={s.eval_every}", f"runtime.checkpoint_every={max(s.steps // 4, 1)}",
              "runtime.log_every=25", "runtime.ema=null"]
    warmup = 0.02  # of the SSLD student's epoch; the same number of steps for every student
    plans = [
        ("c_supervised_1k.yaml", f"{n_labeled:,} labeled images", n_labeled,
         [f"name=resnet20_cifar.demo_sup{n_labeled}", f"stages.0.epochs={s.labeled_epochs}",
          f"stages.0.warmup_epochs={warmup * s.labeled_epochs / s.epochs}", "stages.0.weight_decay=5.0e-4",
          f"stages.0.train.0.subset={labeled}"], False),
        ("d_ssld_1k_unlabeled.yaml", f"{n_labeled:,} + {n_unlabeled:,} unlabeled images", 0,
         [f"name=resnet20_cifar.demo_ssld{n_labeled}_unlabeled", f"stages.0.epochs={s.epochs}",
          f"stages.0.warmup_epochs={warmup}", f"stages.0.train.0.subset={labeled}",
          f"stages.0.train.1.subset={unlabeled}"], False),
    ]
    if s.labeled_only_ssld:
        plans.append(("d_ssld_1k_unlabeled.yaml", f"the {n_labeled:,} images alone", 0,
                      [f"name=resnet20_cifar.demo_ssld{n_labeled}", f"stages.0.epochs={s.labeled_epochs}",
                       f"stages.0.warmup_epochs={warmup * s.labeled_epochs / s.epochs}",
                       f"stages.0.train.0.subset={labeled}"], True))
    out = []
    for file, trained_on, labels_used, overrides, labeled_source_only in plans:
        base = load_recipe(f"cifar10/{file}")
        raw = apply_overrides(base.raw, common + overrides)
        raw["stages"] = raw["stages"][:1]  # stage 2 belongs to the full recipe
        if labeled_source_only:
            raw["stages"][0]["train"] = raw["stages"][0]["train"][:1]
        raw.pop("reference", None)
        out.append((file, parse_recipe(raw, path=base.path), trained_on, labels_used))
    return out


def run_demo(out: Path, settings: Settings, *, data_root: Path | None) -> tuple[list[Row], Path | None]:
    """Train the students in `out`, reload and evaluate them and the teacher; the rows and the plot's path. One demo
    at a time owns `out` (`files.run_lock`)."""
    settings.check()
    from ssld_zoo.data.cifar import load_cifar10
    from ssld_zoo.files import run_lock

    test = load_cifar10("test", data_root)  # fails first, with one clear message, when the data is missing
    with run_lock(out):
        return _train_and_compare(out, settings, test, data_root)


def _train_and_compare(out: Path, settings: Settings, test: Any,
                       data_root: Path | None) -> tuple[list[Row], Path | None]:
    """`run_demo`'s work, in a folder it owns."""
    from ssld_zoo.models.factory import create
    from ssld_zoo.train.engine import train

    _warn_if_busy()
    recipes = student_recipes(settings)
    index = test.indices(f"per_class:{settings.eval_per_class}")
    images, labels = test.decode_all(index), test.labels[index]
    teacher = create(TEACHER, pretrained=True, data_root=data_root)
    start = time.perf_counter()
    teacher_pred = predict(teacher, images)
    rows = [Row(f"{TEACHER} (teacher, akamaster)", "50,000 original CIFAR-10 images", 50000,
                accuracy(teacher_pred, labels), None, time.perf_counter() - start, "")]
    runs, started = [], time.perf_counter()
    for i, (_file, recipe, trained_on, labels_used) in enumerate(recipes):
        _logger.info("student %d/%d: %s (%s, %d steps of %d); %.1f min so far", i + 1, len(recipes), recipe.name,
                     trained_on, settings.steps, settings.batch_size, (time.perf_counter() - started) / 60)
        run_dir = out / recipe.name
        start = time.perf_counter()
        folder = run_dir / recipe.name
        if not (folder / "model.safetensors").is_file():  # a finished run with the same settings is reused
            _check_same_run(run_dir, recipe)
            folder = train(recipe, run_dir, resume=(run_dir / "checkpoint.pt").is_file(), data_root=data_root,
                           device="cpu")
        student = create(recipe.name.split(".")[0], pretrained=str(folder))
        pred = predict(student, images)
        rows.append(Row(recipe.name, trained_on, labels_used, accuracy(pred, labels), accuracy(pred, teacher_pred),
                        time.perf_counter() - start, str(folder)))
        runs.append(run_dir)
    plot = plot_curves(out / PLOT_FILE, runs, rows, settings)
    _write_json(out / RESULT_FILE, {"settings": asdict(settings), "steps": settings.steps,
                                    "rows": [asdict(r) for r in rows]})
    return rows, plot


def _warn_if_busy() -> None:
    """Say so when other work already keeps the cores busy: the demo's advertised time then cannot hold."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return
    if load > 0.5 * cores:
        _logger.warning("this machine is busy (load %.1f on %d cores); the demo will take longer than the %d minutes "
                        "measured on an idle 2-core machine.", load, cores, PROMISED_MINUTES)


def _check_same_run(run_dir: Path, recipe: Any) -> None:
    """A half-finished run in `run_dir` must be this recipe's, else it cannot be resumed."""
    from ssld_zoo.reading import read_text
    from ssld_zoo.train.engine import RECIPE_FILE, recipe_changes
    from ssld_zoo.train.recipe import saved_recipe
    saved = run_dir / RECIPE_FILE
    if (run_dir / "checkpoint.pt").is_file() and saved.is_file():
        changes = recipe_changes(saved_recipe(read_text(saved, what="saved recipe"), str(saved)), recipe.raw)
        if changes:
            raise SsldZooError(f"{run_dir} holds an unfinished demo run with other settings ({', '.join(changes[:3])}"
                               f"); delete it or choose another --out.")


def predict(model: "torch.nn.Module", images: "np.ndarray", batch: int = 500) -> "np.ndarray":
    """Class predictions for uint8 NHWC images with the model's own normalisation."""
    import numpy as np
    import torch
    cfg: dict[str, Any] = model.pretrained_cfg  # type: ignore[assignment]
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float().div_(255)
            out.append(model((x - mean) / std).argmax(-1).numpy())
    return np.concatenate(out)


def accuracy(pred: "np.ndarray", target: "np.ndarray") -> float:
    return float((pred == target).mean() * 100)


def curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """(training images seen, top-1 on the curve's test images) of every evaluation of a run."""
    from ssld_zoo.train.plot import read_metrics
    points = [(m["images_seen"], m["eval_top1"]) for m in read_metrics(run_dir)
              if m.get("type") in ("eval", "epoch") and m.get("eval_top1") is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_curves(path: Path, runs: Sequence[Path], rows: Sequence[Row], settings: Settings) -> Path | None:
    """One PNG: every student's top-1 against training images seen, the teacher as a line; None, said in one
    warning, without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        _logger.warning("matplotlib is not installed, so no %s; `pip install matplotlib` (the package's demo extra) "
                        "draws it.", path)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for run_dir, row in zip(runs, rows[1:]):
        x, y = curve(run_dir)
        label = f"{'supervised' if row.labels_used else 'SSLD'} on {row.trained_on}"
        (line,) = ax.plot(x, y, marker=".", label=f"{label} (final, {10 * settings.eval_per_class:,} test: "
                                                  f"{row.top1:.1f}%)")
        ax.plot([x[-1] if x else 0], [row.top1], marker="*", markersize=12, color=line.get_color())
    ax.axhline(rows[0].top1, linestyle="--", color="gray", label=f"teacher ResNet-56 ({rows[0].top1:.1f}%)")
    ax.set(xlabel="training images seen (steps x batch)", ylabel="top-1 (%)",
           title=f"ResNet-20 students, CIFAR-10 (JPEG q75): top-1 on the first {10 * settings.curve_per_class:,} "
                 f"test images;\n* = final, {10 * settings.eval_per_class:,} test images, reloaded with "
                 "ssld_zoo.create", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    from ssld_zoo.files import atomic_path
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from ssld_zoo.files import write_text_atomic
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def format_table(rows: Sequence[Row], settings: Settings, seconds: float, plot: Path | None) -> str:
    n_eval = CLASSES * settings.eval_per_class
    lines = [f"\nTop-1 on {n_eval:,} CIFAR-10 test images (re-encoded as JPEG q75, YoongiKim), each student reloaded "
             f"with ssld_zoo.create(..., pretrained=RUN_DIR/...).",
             f"Every ResNet-20 student: {settings.steps} steps of batch {settings.batch_size} "
             f"({settings.steps * settings.batch_size:,} training images seen), bf16 on the CPU.", "",
             f"| {'model':<42} | {'trained on':<34} | {'labels':>6} | {'top-1':>6} | {'agrees w/ teacher':>17} "
             f"| {'time':>6} |",
             f"|{'-' * 44}|{'-' * 36}|{'-' * 8}|{'-' * 8}|{'-' * 19}|{'-' * 8}|"]
    for r in rows:
        agree = "" if r.agreement is None else f"{r.agreement:.2f}%"
        lines.append(f"| {r.model:<42} | {r.trained_on:<34} | {r.labels_used:>6} | {r.top1:>5.2f}% | {agree:>17} "
                     f"| {r.seconds:>5.0f}s |")
    sup = next((r for r in rows[1:] if r.labels_used), None)
    ssld = next((r for r in rows[1:] if not r.labels_used), None)
    if sup and ssld:
        lines += ["", f"SSLD without labels vs supervised with {sup.labels_used:,} labels: {ssld.top1 - sup.top1:+.2f} "
                      "points top-1."]
    lines.append(f"Wall time {seconds / 60:.1f} min (the README promises about {PROMISED_MINUTES} min at the defaults "
                 "on 2 cores; a finished run in --out is reused).")
    if plot is not None:
        lines.append(f"Curves: {plot}")
    lines += ["", "The full recipes (200 epochs, stage 2 included) on a GPU:",
              "  ssld-zoo train recipes/cifar10/c_supervised_1k.yaml --device cuda",
              "  ssld-zoo train recipes/cifar10/d_ssld_1k_unlabeled.yaml --device cuda",
              "  ssld-zoo train recipes/cifar10/a_supervised.yaml --device cuda",
              "  ssld-zoo train recipes/cifar10/b_ssld.yaml --device cuda",
              "(several GPUs: torchrun --nproc_per_node N -m ssld_zoo.train RECIPE.yaml)"]
    return "\n".join(lines)
