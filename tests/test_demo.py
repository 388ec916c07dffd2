"""The README's main command, `ssld-zoo demo`, end to end on the real CIFAR-10 data (tiny sizes here)."""
from __future__ import annotations

import json
import re

import pytest

from ssld_zoo.cli import main

TINY = ["--with-labeled-only", "--epochs", "1", "--labeled-per-class", "10", "--unlabeled-per-class", "20",
        "--batch-size", "20", "--eval-per-class", "20", "--curve-per-class", "5", "--eval-every", "5"]


def test_demo_distils_reloads_and_compares(capsys, tmp_path):
    args = ["demo", *TINY, "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = {m[1].strip(): (m[2].strip(), int(m[3]), float(m[4])) for m in
            re.finditer(r"^\| (\S+(?: \(teacher, akamaster\))?)\s*\| ([^|]+)\|\s+(\d+) \|\s+([\d.]+)% \|", out, re.M)}
    assert list(rows) == ["resnet56_cifar (teacher, akamaster)", "resnet20_cifar.demo_sup100",
                          "resnet20_cifar.demo_ssld100_unlabeled", "resnet20_cifar.demo_ssld100"]
    assert rows["resnet20_cifar.demo_sup100"][:2] == ("100 labeled images", 100)
    assert rows["resnet20_cifar.demo_ssld100_unlabeled"][:2] == ("100 + 200 unlabeled images", 0)
    assert rows["resnet20_cifar.demo_ssld100"][1] == 0
    assert rows["resnet56_cifar (teacher, akamaster)"][2] > 70  # the real off-the-shelf teacher, on 200 test images
    assert "Every ResNet-20 student: 15 steps of batch 20 (300 training images seen)" in out
    assert "ssld-zoo train recipes/cifar10/d_ssld_1k_unlabeled.yaml --device cuda" in out
    assert re.search(r"Wall time [\d.]+ min \(the README promises about 10 min", out)
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["steps"] == 15 and [r["top1"] for r in result["rows"]] == [v[2] for v in rows.values()]
    for name in list(rows)[1:]:
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        curve = [(r["global_step"], r["images_seen"]) for r in records if r.get("eval_top1") is not None]
        assert curve == [(5, 100), (10, 200), (15, 300)]  # the same steps for every student
        assert (tmp_path / name / name / "model.safetensors").is_file()
    assert main(args) == 0  # a second run reuses the finished runs
    assert capsys.readouterr().out.count("| resnet20_cifar") == 3


@pytest.mark.parametrize("flags, message", [
    (["--labeled-per-class", "10", "--unlabeled-per-class", "15"], "must be a multiple of --labeled-per-class"),
    (["--labeled-per-class", "100", "--batch-size", "300"], "--batch-size must divide the 1000 labeled images"),
    (["--labeled-per-class", "3000", "--unlabeled-per-class", "3000"], "add up to at most 5000"),
    (["--eval-every", "0"], "--eval-every must be positive"),
])
def test_demo_sizes_that_cannot_give_equal_steps_are_refused(capsys, tmp_path, flags, message):
    assert main(["demo", *flags, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_demo_without_data_is_one_clear_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SSLD_ZOO_DATA", raising=False)
    assert main(["demo", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar10" in err and str(tmp_path / "nowhere") in err
