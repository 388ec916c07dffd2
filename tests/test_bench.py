"""`ssld-zoo bench`: every requested combination gets a row, the timm comparison where the architecture is stock timm,
the JSON round-trips, bad input fails in one line. Tiny models at 32 px, one or two calls; no timing assertions."""
from __future__ import annotations

import itertools
import json

import pytest
import timm
import torch

from ssld_zoo.tools import bench
from ssld_zoo.cli import main
from ssld_zoo.errors import SsldZooError

TINY = dict(input_size=32, warmup=1, rounds=2, iters=1)
ROW_KEYS = {"model", "device", "dtype", "channels_last", "batch_size", "input_size", "median_ms", "p90_ms", "min_ms",
            "img_per_s", "samples", "timm", "zoo_timm_ratio", "zoo_timm_ratio_range"}


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """`--threads` sets torch's process-wide thread count; later tests get the original back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_stock(extra_catalogue) -> str:
    """A zoo name on a stock timm architecture (`test_resnet`)."""
    extra_catalogue()
    return "tiny_resnet_ssld"


def test_a_row_for_every_combination_with_timm_only_for_stock_architectures(tiny_stock):
    settings = bench.Settings(batch_size=2, devices=("cpu",), **TINY)
    seen = []
    result = bench.benchmark([tiny_stock, "resnet20_cifar"], settings, on_row=seen.append)
    rows = result["rows"]
    assert seen == rows
    combos = {(r["model"], r["device"], r["dtype"], r["channels_last"], r["batch_size"]) for r in rows}
    assert combos == set(itertools.product([tiny_stock, "resnet20_cifar"], ["cpu"], ["fp32", "bf16"],
                                           [False, True], [1, 2]))
    assert len(rows) == len(combos)
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["input_size"] == [3, 32, 32] and row["samples"] == 2
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"]
        assert row["img_per_s"] == pytest.approx(row["batch_size"] * 1e3 / row["median_ms"], rel=1e-3)
        if row["model"] == tiny_stock:
            assert row["timm"]["architecture"] == "test_resnet" and row["timm"]["median_ms"] > 0
            low, high = row["zoo_timm_ratio_range"]
            assert 0 < low <= row["zoo_timm_ratio"] <= high
        else:
            assert row["timm"] is None and row["zoo_timm_ratio"] is None and row["zoo_timm_ratio_range"] is None


def test_cli_prints_the_table_and_writes_json_that_reads_back(tiny_stock, tmp_path, capsys):
    out = tmp_path / "results" / "bench.json"
    argv = ["bench", tiny_stock, "resnet20_cifar", "--batch-size", "3", "--dtype", "fp32", "--channels-last", "on",
            "--device", "cpu", "--input-size", "32", "--warmup", "0", "--rounds", "1", "--iters", "2",
            "--threads", "1", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["model", "device", "dtype"]
    table = [line.split() for line in printed[1:5]]
    assert [(cells[0], cells[3], cells[4]) for cells in table] == [
        (tiny_stock, "NHWC", "1"), (tiny_stock, "NHWC", "3"), ("resnet20_cifar", "NHWC", "1"),
        ("resnet20_cifar", "NHWC", "3")]
    assert table[2][-1] == "–" and table[0][-1].endswith(")")  # ratio with its range for the stock model only
    assert printed[-1] == f"wrote {out}"

    result = json.loads(out.read_text())
    env = result["environment"]
    assert env["torch"] == torch.__version__ and env["timm"] == timm.__version__
    assert env["threads"] == 1 and env["cuda_device"] is None and env["cpu"]
    assert result["settings"]["iters"] == 2 and result["settings"]["channels_last"] == ["on"]
    assert [(r["model"], r["batch_size"], r["channels_last"], r["samples"]) for r in result["rows"]] == [
        (tiny_stock, 1, True, 2), (tiny_stock, 3, True, 2), ("resnet20_cifar", 1, True, 2),
        ("resnet20_cifar", 3, True, 2)]
    assert result["command"].startswith(f"ssld-zoo bench {tiny_stock} resnet20_cifar --batch-size 3 --dtype fp32 ")
    assert result["command"].endswith(f"--json {out}")


def test_seconds_budget_times_at_least_one_call_per_round():
    settings = bench.Settings(batch_size=1, dtypes=("fp32",), channels_last=(False,), input_size=32, warmup=0,
                              rounds=3, iters=None, seconds=0.001)
    (row,) = bench.benchmark(["resnet20_cifar"], settings)["rows"]
    assert row["batch_size"] == 1 and row["samples"] >= 3


def test_names_patterns_and_tags_resolve_to_their_input_size_and_timm_twin():
    settings = bench.Settings()
    subjects = {s.name: s for s in bench.resolve_subjects(["resnet*_cifar", "resnet50d_ssld.fix_ssld_v2_in1k",
                                                           "resnet34d_ssld"], settings)}
    assert list(subjects) == ["resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar",
                              "resnet50d_ssld.fix_ssld_v2_in1k", "resnet34d_ssld"]
    assert subjects["resnet50d_ssld.fix_ssld_v2_in1k"].input_size == (3, 320, 320)
    assert subjects["resnet50d_ssld.fix_ssld_v2_in1k"].timm_architecture == "resnet50d"
    assert subjects["resnet32_cifar"].input_size == (3, 32, 32)
    assert subjects["resnet32_cifar"].timm_architecture is None
    assert subjects["resnet34d_ssld"].timm_architecture is None  # the zoo's own ResNet34-D layout
    no_timm = bench.resolve_subjects(["resnet50d_ssld"], bench.Settings(compare_timm=False, input_size=64))
    assert no_timm[0].timm_architecture is None and no_timm[0].input_size == (3, 64, 64)


@pytest.mark.parametrize("argv, message", [
    (["resnet50_ssld"], "Unknown model 'resnet50_ssld'. Did you mean"),
    (["nothing_*"], "No model matches 'nothing_*'"),
    (["resnet20_cifar", "--dtype", "fp16"], "Unknown dtype 'fp16': choose from fp32, bf16"),
    (["resnet20_cifar", "--device", "tpu"], "Unknown device 'tpu': choose from cpu, cuda"),
    (["resnet20_cifar", "--channels-last", "yes"], "--channels-last takes 'on' and/or 'off', not yes"),
    (["resnet20_cifar", "--batch-size", "0"], "The batch size must be at least 1 (got 0)"),
    (["resnet20_cifar", "--iters", "0"], "Iterations per round must be at least 1"),
    (["resnet20_cifar", "--input-size", "0"], "The input size must be at least 1 (got 0)"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(["bench", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ssld-zoo: error: {message}") and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line(capsys):
    assert main(["bench", "resnet20_cifar", "--device", "cpu", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ssld-zoo: error: CUDA was asked for") and "--device cpu" in err and err.count("\n") == 1


def test_iters_and_seconds_exclude_each_other():
    with pytest.raises(SystemExit):
        main(["bench", "resnet20_cifar", "--iters", "2", "--seconds", "1"])
    with pytest.raises(SsldZooError, match="exactly one of iterations per round and seconds"):
        bench.Settings(iters=None, seconds=None)
    with pytest.raises(SsldZooError, match="at least one dtype"):
        bench.Settings(dtypes=())
