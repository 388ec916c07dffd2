"""`plot_run(RUN_DIR)`: training curves from `metrics.jsonl` into `RUN_DIR/curves.png` (needs matplotlib)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from ssld_zoo.errors import SsldZooError
from ssld_zoo.reading import MAX_LIST_BYTES, parse_json, read_text

CURVES_FILE = "curves.png"


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of `RUN_DIR/metrics.jsonl` (one JSON object per line)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise SsldZooError(f"Cannot read {path}: No such file or directory. Is {run_dir} a training run folder?")
    lines = read_text(path, what="metrics file", max_bytes=MAX_LIST_BYTES).splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = parse_json(line, where=f"{path}:{number}", path=str(path))
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            raise SsldZooError(f"{path}:{number} is not a metrics record (a JSON object with a 'type'); was the file "
                               "edited?")
        if record["type"] == "epoch" and not all(k in record for k in ("stage", "epoch", "train_loss", "lr")):
            missing = [k for k in ("stage", "epoch", "train_loss", "lr") if k not in record]
            raise SsldZooError(f"{path}:{number}: the epoch record lacks {', '.join(missing)}; was the file edited?")
        records.append(record)
    return records


def plot_run(run_dir: str | os.PathLike) -> Path:
    """Plot train loss and lr per epoch, and eval top-1 / teacher agreement per evaluation; return the PNG path."""
    try:
        import matplotlib
    except ImportError:
        raise SsldZooError("Plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    records = read_metrics(run_dir)
    epochs = [m for m in records if m.get("type") == "epoch"]
    if not epochs:
        raise SsldZooError(f"{Path(run_dir) / 'metrics.jsonl'} has no finished epoch to plot yet.")
    teacher = next((m for m in records if m.get("type") == "teacher_eval"), None)
    x = list(range(1, len(epochs) + 1))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(x, [m["train_loss"] for m in epochs], marker=".")
    axes[0].set(title="train loss", xlabel="epoch")
    axes[1].plot(x, [m["lr"] for m in epochs], marker=".")
    axes[1].set(title="learning rate (last step of epoch)", xlabel="epoch")
    evals = [m for m in records if m.get("type") in ("eval", "epoch") and m.get("eval_top1") is not None]
    by_images = all("images_seen" in m for m in evals)  # runs before images_seen was recorded: by epoch
    seen = [m["images_seen"] if by_images else m["epoch"] for m in evals]
    for key, label in (("eval_top1", "student top-1"), ("agreement", "agreement with teacher")):
        if any(m.get(key) is not None for m in evals):
            axes[2].plot(seen, [m.get(key) for m in evals], marker=".", label=label)
    if teacher and teacher.get("top1") is not None:
        axes[2].axhline(teacher["top1"], linestyle="--", color="gray", label="teacher top-1")
    axes[2].set(title="eval (%)", xlabel="training images seen" if by_images else "epoch")
    if axes[2].lines:
        axes[2].legend()
    for boundary in [i + 1.5 for i in range(len(epochs) - 1) if epochs[i]["stage"] != epochs[i + 1]["stage"]]:
        for ax in axes[:2]:
            ax.axvline(boundary, color="black", linewidth=0.5)
    fig.tight_layout()
    from ssld_zoo.files import atomic_path
    out = Path(run_dir) / CURVES_FILE
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `plot` command's arguments."""
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run folder (with metrics.jsonl)")


def run(args: argparse.Namespace) -> Path:
    """Plot as `args` say; print and return the PNG's path."""
    out = plot_run(args.run_dir)
    print(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from ssld_zoo.console import run_command
    return run_command(add_arguments, run, argv, prog="python -m ssld_zoo.train.plot",
                       description="Plot a training run.")


if __name__ == "__main__":
    sys.exit(main())
