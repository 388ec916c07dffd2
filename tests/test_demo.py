"""The README's main command, `ssld-zoo demo`, end to end on the real CIFAR-10 data (tiny sizes here)."""
from __future__ import annotations

import json
import logging
import re
import sys
import tomllib

import pytest
from conftest import REPO_ROOT

from ssld_zoo.cli import main
from ssld_zoo.reporting import to_stderr
from ssld_zoo.train.demo import Row, Settings, plot_curves

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


def test_the_readmes_main_job_installs_what_the_demo_picture_needs():
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (command,) = re.findall(r"^pip install -e (\S+) && SSLD_ZOO_DATA=\S+ ssld-zoo demo$",
                            (REPO_ROOT / "README.md").read_text(), re.M)
    (chosen,) = re.fullmatch(r'"\.\[(\w+)\]"', command).groups()
    assert any(requirement.startswith("matplotlib") for requirement in extras[chosen])


def test_without_matplotlib_the_demo_says_in_one_line_how_to_get_its_picture(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` meets where it is not installed
    rows = [Row("teacher", "50,000", 50000, 80.0, None, 1.0, "")]
    with to_stderr():  # as the `demo` command shows it
        assert plot_curves(tmp_path / "demo.png", [], rows, Settings()) is None
    err = capsys.readouterr().err
    assert err == (f"[ssld-zoo demo] warning: matplotlib is not installed, so no {tmp_path / 'demo.png'}; "
                   "`pip install matplotlib` (the package's demo extra) draws it.\n")
    assert not (tmp_path / "demo.png").exists()
    logging.getLogger("ssld_zoo").setLevel(logging.ERROR)  # an application that silences the library hears nothing
    try:
        assert plot_curves(tmp_path / "demo.png", [], rows, Settings()) is None
    finally:
        logging.getLogger("ssld_zoo").setLevel(logging.NOTSET)
    assert capsys.readouterr() == ("", "")
