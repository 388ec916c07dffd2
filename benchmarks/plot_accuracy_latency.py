"""Accuracy versus CPU latency of the ImageNet models: `docs/accuracy_latency.png` and the table in
`docs/benchmarking.md`.

Top-1 is ImageNet-1k validation as reported by PaddleClas (the catalogue's `metrics.paddle_reported` of each default
weight), not measured here. Latency is the batch-1 median that `ssld-zoo bench` measured on this project's machine and
wrote to `docs/bench_cpu.json`. The PNG carries a sha256 of both inputs, so `tests/test_docs_bench.py` notices when
either changed without the chart being redrawn.

    ssld-zoo bench '*_ssld' --batch-size 1 --dtype fp32 --channels-last off --device cpu --warmup 2 --rounds 5 \
        --iters 3 --threads 2 --json docs/bench_cpu.json
    python benchmarks/plot_accuracy_latency.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_JSON = ROOT / "docs" / "bench_cpu.json"
CHART = ROOT / "docs" / "accuracy_latency.png"
DOC = ROOT / "docs" / "benchmarking.md"
HASH_KEY = "ssld_zoo inputs sha256"
TABLE_START, TABLE_END = "<!-- bench-cpu-table:start -->", "<!-- bench-cpu-table:end -->"
IMAGENET = "imagenet-1k-val"
REGENERATE = "python benchmarks/plot_accuracy_latency.py"
LATENCY_SETTING = {"device": "cpu", "dtype": "fp32", "channels_last": False, "batch_size": 1}
NOISY = 1.5  # p90 / median above this: the calls were disturbed (a busy machine), the median is not trustworthy


@dataclass(frozen=True)
class Point:
    """One model on the chart: catalogue values (family, PaddleClas top-1) and its measured batch-1 row."""

    model: str
    family: str
    top1: float
    row: dict[str, Any]

    @property
    def noisy(self) -> bool:
        return self.row["p90_ms"] > NOISY * self.row["median_ms"]


def imagenet_models() -> dict[str, tuple[str, float]]:
    """Catalogue models whose default weights have a PaddleClas-reported ImageNet top-1: name -> (family, top-1)."""
    sys.path.insert(0, str(ROOT))
    from ssld_zoo.catalogue.registry import iter_models
    models = {}
    for entry in iter_models():
        reported = entry.weight().data["metrics"]["paddle_reported"]
        if reported and reported["dataset"] == IMAGENET:
            models[entry.name] = (entry.data["family"], float(reported["top1"]))
    return models


def latency_rows(bench: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The batch-1, fp32, NCHW CPU row of each model in a `ssld-zoo bench` result."""
    return {row["model"]: row for row in bench["rows"]
            if all(row[key] == value for key, value in LATENCY_SETTING.items())}


def points(bench: dict[str, Any]) -> list[Point]:
    """Every catalogue ImageNet model with its row; a model without one is an error naming the bench command."""
    rows, models = latency_rows(bench), imagenet_models()
    missing = sorted(set(models) - set(rows))
    if missing:
        raise SystemExit(f"{BENCH_JSON.name} has no batch-1 fp32 CPU row for {', '.join(missing)}: rerun "
                         f"`{bench.get('command', 'ssld-zoo bench')}`, then `{REGENERATE}`.")
    return [Point(name, family, top1, rows[name]) for name, (family, top1) in models.items()]


def inputs_sha256(bench_bytes: bytes, chart_points: list[Point]) -> str:
    """sha256 of the bench JSON file and of the catalogue values drawn (model, family, top-1)."""
    catalogue = [(p.model, p.family, p.top1) for p in chart_points]
    digest = hashlib.sha256(bench_bytes)
    digest.update(json.dumps(catalogue, sort_keys=True).encode())
    return digest.hexdigest()


def measured_on(bench: dict[str, Any]) -> str:
    """Hardware and versions of the run, in one line."""
    env = bench["environment"]
    return (f"{env['cpu']}, {env['cpu_count']} vCPUs, {env['threads']} threads, torch {env['torch']}, "
            f"timm {env['timm']}, {env['date']}")


def plot(bench: dict[str, Any], chart_points: list[Point], inputs_hash: str, out: Path) -> None:
    """Draw top-1 against log latency, one labelled point per model, coloured by family; write `out` atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    families = list(dict.fromkeys(p.family for p in chart_points))
    colours, markers = plt.get_cmap("tab10").colors, "os^Dv<>ph*XP"
    by_latency = sorted(chart_points, key=lambda p: p.row["median_ms"])
    label_below = {p.model: rank % 2 == 1 for rank, p in enumerate(by_latency)}  # neighbours' labels alternate
    fig, ax = plt.subplots(figsize=(12, 8))
    for index, family in enumerate(families):
        members = [p for p in by_latency if p.family == family]
        colour = colours[index % len(colours)]
        ax.plot([p.row["median_ms"] for p in members], [p.top1 for p in members], marker=markers[index % len(markers)],
                linewidth=0.8, color=colour, label=family)
        noisy = [p for p in members if p.noisy]
        ax.scatter([p.row["median_ms"] for p in noisy], [p.top1 for p in noisy], s=36,
                   marker=markers[index % len(markers)],
                   facecolors="white", edgecolors=colour, zorder=3)
        for p in members:
            ax.annotate(p.model.removesuffix("_ssld"), (p.row["median_ms"], p.top1), textcoords="offset points",
                        xytext=(4, -9 if label_below[p.model] else 3), fontsize=7, color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("CPU latency, batch 1, fp32, ms (median; log scale) — measured here")
    ax.set_ylabel("ImageNet-1k val top-1 (%) — as reported by PaddleClas, not measured here")
    ax.set_title("SSLD models: reported ImageNet top-1 vs measured CPU latency")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(title=f"family (hollow: p90 > {NOISY}x median, timed on a busy machine)", fontsize=8,
              title_fontsize=8, loc="lower right")
    fig.text(0.01, 0.01, f"Latency measured on {measured_on(bench)}:\n{bench['command']}", fontsize=7,
             family="monospace", va="bottom")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100, metadata={
            "Title": "ssld_zoo accuracy vs latency", "Software": f"matplotlib {matplotlib.__version__}",
            HASH_KEY: inputs_hash})
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def table(bench: dict[str, Any], chart_points: list[Point]) -> str:
    """Markdown table of the measured rows, catalogue order, with the timm comparison where there is one."""
    lines = ["| model | family | top-1 (PaddleClas) | median ms | p90 ms | img/s | timm architecture | timm ms | "
             "zoo/timm (range over rounds) |", "|---|---|---|---|---|---|---|---|---|"]
    for p in chart_points:
        row, timm = p.row, p.row["timm"]
        compare = "– | – | –"
        if timm:
            low, high = row["zoo_timm_ratio_range"]
            compare = (f"`{timm['architecture']}` | {timm['median_ms']:.2f} | "
                       f"{row['zoo_timm_ratio']:.2f} ({low:.2f}–{high:.2f})")
        lines.append(f"| `{p.model}` | {p.family} | {p.top1:.2f} | {row['median_ms']:.2f} | {row['p90_ms']:.2f} | "
                     f"{row['img_per_s']:.1f} | {compare} |")
    return "\n".join(lines)


def doc_with_table(doc: str, bench: dict[str, Any], chart_points: list[Point]) -> str:
    """`doc` with the text between the table markers replaced by the current table."""
    head, start, rest = doc.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise SystemExit(f"{DOC} lacks the markers {TABLE_START} ... {TABLE_END}.")
    return f"{head}{TABLE_START}\n{table(bench, chart_points)}\n{TABLE_END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=BENCH_JSON, help="ssld-zoo bench JSON (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=CHART, help="PNG to write (default: %(default)s)")
    parser.add_argument("--doc", type=Path, default=DOC, help="Markdown file whose table to rewrite "
                                                              "(default: %(default)s)")
    args = parser.parse_args()
    bench_bytes = args.bench.read_bytes()
    bench = json.loads(bench_bytes)
    chart_points = points(bench)
    plot(bench, chart_points, inputs_sha256(bench_bytes, chart_points), args.out)
    sys.path.insert(0, str(ROOT))
    from ssld_zoo.files import write_text_atomic
    write_text_atomic(args.doc, doc_with_table(args.doc.read_text(encoding="utf-8"), bench, chart_points))
    print(f"wrote {args.out} and the table in {args.doc}")


if __name__ == "__main__":
    main()
