"""What a finished run writes beside its list: the list itself, `STEM.summary.json` and the PNG plots."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssld_zoo.files import atomic_path
from ssld_zoo.tools.mining.settings import MineSettings
from ssld_zoo.tools.mining.state import SCORE_BINS, MineState

if TYPE_CHECKING:
    from ssld_zoo.train.data import Images

QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
_logger = logging.getLogger("ssld_zoo.tools.mine")  # the command's logger: its lines carry its CLI tag


def output_paths(out: Path) -> dict[str, Path]:
    """The files a run writes next to its list `out`."""
    stem = out.parent / out.stem
    return {"summary": Path(f"{stem}.summary.json"), "scores": Path(f"{stem}.scores.png"),
            "duplicates": Path(f"{stem}.duplicates.png"), "state": Path(f"{stem}.state.npz"),
            "exclude": Path(f"{stem}.exclude.npz")}



def _histogram_quantiles(histogram: list[int]) -> dict[str, float] | None:
    """Quantiles of the binned candidate scores, each the upper edge of its 1/SCORE_BINS-wide bin."""
    import numpy as np
    cumulative = np.cumsum(histogram)
    if cumulative[-1] == 0:
        return None
    bins = [min(int(np.searchsorted(cumulative, max(q * cumulative[-1], 1))), SCORE_BINS - 1) for q in QUANTILES]
    return {f"{q:g}": (b + 1) / SCORE_BINS for q, b in zip(QUANTILES, bins)}


def _summary(settings: MineSettings, state: MineState, pool: "Images", exclude_size: int,
             selected: list[tuple[int, float, int]], input_size: int) -> dict[str, Any]:
    import numpy as np
    scores = np.array([s for _, s, _ in selected])
    labelled = bool((pool.labels >= 0).any())
    per_class = []
    for c, heap in enumerate(state.heaps):
        row: dict[str, Any] = {"class": c, "candidates": state.predicted[c], "selected": len(heap),
                               "min_score": heap[0][0] if heap else None}
        if labelled:
            row["label_agreement"] = float(np.mean([pool.labels[-i] == c for _, i in heap])) if heap else None
        per_class.append(row)
    summary = {
        "settings": asdict(settings), "teacher_input_size": input_size,
        "pool": {"images": len(pool), "undecodable": state.undecodable, "near_duplicates": state.duplicates,
                 "candidates": int(sum(state.predicted)), "selected": len(selected)},
        "exclude_images": exclude_size,
        "scores": {"candidates_quantiles_binned": _histogram_quantiles(state.histogram),
                   "selected_quantiles": ({f"{q:g}": float(np.quantile(scores, q)) for q in QUANTILES}
                                          if len(scores) else None)},
        "per_class": per_class,
        "duplicate_examples": state.duplicate_examples, "undecodable_examples": state.undecodable_examples,
        "seconds": round(state.seconds, 2),
        "images_per_second": round(state.processed / state.seconds, 1) if state.seconds else None}
    if labelled and len(selected):
        summary["label_agreement"] = float(np.mean([pool.labels[i] == c for c, _, i in selected]))
    return summary


def write_outputs(out: Path, paths: dict[str, Path], pool: "Images", exclude: "Images", settings: MineSettings,
                   state: MineState, input_size: int) -> int:
    from ssld_zoo.files import write_text_atomic
    selected = sorted(((c, s, -i) for c, heap in enumerate(state.heaps) for s, i in heap), key=lambda t: t[2])
    header = [f"# ssld-zoo mine: {len(selected)} images from pool {settings.pool}"
              + (f" ({settings.pool_subset})" if settings.pool_subset else ""),
              f"# teacher {settings.teacher}" + (f" ({settings.teacher_weights})" if settings.teacher_weights else "")
              + f", input {input_size} px; top {settings.per_class} per predicted class"
              + (f", score >= {settings.min_score}" if settings.min_score is not None else ""),
              f"# near-duplicates of {settings.exclude} dropped: {state.duplicates} ({settings.dedup}, "
              f"{'distance <=' if settings.dedup == 'phash' else 'cosine >='} {settings.threshold:g})",
              "# use as an unlabeled recipe source: {source: 'list:THIS_FILE', labels: false}"]
    write_text_atomic(out, "\n".join(header + [pool.entry(i) for _, _, i in selected]) + "\n")
    summary = _summary(settings, state, pool, len(exclude), selected, input_size)
    write_text_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    _plot(paths, summary, state, pool, exclude)
    return len(selected)


def _plot(paths: dict[str, Path], summary: dict[str, Any], state: MineState, pool: "Images",
          exclude: "Images") -> None:
    """The score histogram and per-class counts; example duplicate pairs. Skipped without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        _logger.warning("matplotlib is not installed, so no PNG plots (pip install matplotlib).")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    edges = np.linspace(0, 1, SCORE_BINS + 1)
    axes[0].stairs(state.histogram, edges, fill=True, label="candidates")
    selected = [s for heap in state.heaps for s, _ in heap]
    axes[0].hist(selected, bins=edges, histtype="step", color="C3", label="selected")
    axes[0].set(title="teacher top-class confidence", xlabel="softmax score", ylabel="images", yscale="log")
    axes[0].legend()
    classes = np.arange(state.num_classes)
    axes[1].bar(classes, state.predicted, color="C0", label="candidates")
    axes[1].bar(classes, [row["selected"] for row in summary["per_class"]], color="C3", label="selected")
    axes[1].set(title="images per predicted class", xlabel="class", ylabel="images")
    axes[1].legend()
    _savefig_atomic(fig, paths["scores"])
    examples = state.duplicate_examples[:8]
    if not examples:
        return
    fig, axes = plt.subplots(2, len(examples), figsize=(1.6 * len(examples), 3.6), squeeze=False)
    for k, example in enumerate(examples):
        value = example.get("distance", example.get("similarity"))
        for row, (images, side) in enumerate(((pool, "pool"), (exclude, "exclude"))):
            axes[row, k].imshow(images.image(example[f"{side}_index"]))
            axes[row, k].set_axis_off()
            axes[row, k].set_title(_short(example[side]) + (f"\n{value:.3g}" if row == 0 else ""), fontsize=7)
    fig.suptitle("near-duplicates dropped: pool (top) / excluded image (bottom)", fontsize=9)
    _savefig_atomic(fig, paths["duplicates"])


def _short(name: str) -> str:
    return name if name.startswith("cifar10:") else Path(name).name


def _savefig_atomic(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt
    try:
        with atomic_path(path) as tmp:
            fig.tight_layout()
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)

