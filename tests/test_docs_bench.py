"""The checked-in CPU benchmark stays current: docs/bench_cpu.json covers every catalogue ImageNet model, and the chart
and the table in docs/benchmarking.md were drawn from that JSON and today's catalogue values."""
from __future__ import annotations

import dataclasses
import json
import sys

import pytest
from conftest import REPO_ROOT
from PIL import Image

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import plot_accuracy_latency as plot_script  # noqa: E402


@pytest.fixture(scope="module")
def bench() -> tuple[bytes, dict]:
    data = plot_script.BENCH_JSON.read_bytes()
    return data, json.loads(data)


def _regenerate(bench: dict) -> str:
    return f"run `{bench['command']}` (several minutes on 2 cores), then `{plot_script.REGENERATE}`, and commit both"


def test_bench_json_covers_every_catalogue_imagenet_model(bench):
    _, result = bench
    missing = sorted(set(plot_script.imagenet_models()) - set(plot_script.latency_rows(result)))
    assert not missing, f"docs/bench_cpu.json has no batch-1 fp32 CPU row for {missing}: {_regenerate(result)}"
    assert result["environment"]["cpu"] and result["command"].startswith("ssld-zoo bench ")


def test_chart_was_drawn_from_the_current_inputs(bench):
    data, result = bench
    expected = plot_script.inputs_sha256(data, plot_script.points(result))
    with Image.open(plot_script.CHART) as chart:
        embedded = chart.text.get(plot_script.HASH_KEY)
    assert embedded == expected, (f"docs/accuracy_latency.png is stale (its inputs changed): "
                                  f"run `{plot_script.REGENERATE}` and commit the result")


def test_doc_table_is_current(bench):
    _, result = bench
    doc = plot_script.DOC.read_text(encoding="utf-8")
    assert doc == plot_script.doc_with_table(doc, result, plot_script.points(result)), (
        f"the table in docs/benchmarking.md is stale: run `{plot_script.REGENERATE}` and commit the result")


def test_input_hash_follows_the_catalogue_values_and_the_json(bench):
    data, result = bench
    points = plot_script.points(result)
    reference = plot_script.inputs_sha256(data, points)
    changed_top1 = [dataclasses.replace(points[0], top1=points[0].top1 + 0.01), *points[1:]]
    assert plot_script.inputs_sha256(data, changed_top1) != reference
    assert plot_script.inputs_sha256(data + b" ", points) != reference
