"""The README's main command, `ssld-zoo demo`, end to end on the real CIFAR-10 data (tiny sizes here)."""
from __future__ import annotations

import re

from ssld_zoo.cli import main


def test_demo_distils_reloads_and_compares(capsys, tmp_path):
    args = ["demo", "--images-per-class", "20", "--epochs", "1", "--eval-per-class", "20", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = {m[1].strip(): (m[2].strip(), float(m[3])) for m in
            re.finditer(r"^\| (\S+ \S+)\s*\| (\S+(?: \S+)?)\s*\|\s+([\d.]+)% \|", out, re.M)}
    assert set(rows) == {"resnet56_cifar (teacher)", "resnet20_cifar.ssld_r56_cifar10 (b)",
                         "resnet20_cifar.sup_cifar10 (a)"}
    assert rows["resnet20_cifar.ssld_r56_cifar10 (b)"][0] == "none"
    assert rows["resnet56_cifar (teacher)"][1] > 70  # the real off-the-shelf teacher, on 200 real test images
    assert "ssld-zoo train recipes/cifar10/d_ssld_1k_unlabeled.yaml --device cuda" in out
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all((tmp_path / f / f.split("-")[0] / "model.safetensors").is_file()
                                     for f in folders)
    assert main(args) == 0  # a second run reuses the finished runs
    assert capsys.readouterr().out.count("| resnet20_cifar") == 2


def test_demo_without_data_is_one_clear_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SSLD_ZOO_DATA", raising=False)
    assert main(["demo", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar10" in err and str(tmp_path / "nowhere") in err
