"""The `ssld-zoo` command: each subcommand works, and wrong input gives one clear line and a non-zero exit."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from ssld_zoo.cli import main
from test_create import TINY, published_tiny, tiny_weights  # noqa: F401  (fixtures)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_pattern(capsys):
    code, out, _ = run(capsys, "list", "mobilenetv3_*")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["mobilenetv3_large_ssld", "mobilenetv3_small_035_ssld",
                                                              "mobilenetv3_small_ssld"]
    assert "ImageNet top-1 78.96 (PaddleClas)" in out


def test_list_pretrained_only_lists_loadable_weights(capsys, monkeypatch, tmp_path):
    code, out, err = run(capsys, "list", "resnet*_ssld", "--pretrained")
    assert code == 0 and out == "" and "with loadable weights" in err
    monkeypatch.setenv("SSLD_ZOO_DATA", str(tmp_path))  # no data folder: only the shipped students load
    code, out, _ = run(capsys, "list", "resnet20*", "--pretrained")
    assert [line.split()[0] for line in out.splitlines()] == [
        "resnet20_cifar.ssld1k_r56_cifar10", "resnet20_cifar.ssld_r56_cifar10", "resnet20_cifar.sup1k_cifar10",
        "resnet20_cifar.sup_cifar10"]
    assert all("cifar10-jpeg-q75-test top-1" in line for line in out.splitlines())


def test_info_names_the_architecture_kind_and_unpinned_revisions(capsys):
    code, out, _ = run(capsys, "info", "resnet20_cifar")
    assert code == 0 and "(zoo architecture `resnet20_cifar`)" in out
    assert "@unpinned" in out and "@None" not in out
    code, out, _ = run(capsys, "info", "resnet50d_ssld")
    assert "timm architecture `resnet50d`" in out


def test_info_text_and_json(capsys):
    code, out, _ = run(capsys, "info", "resnet50d_ssld")
    assert code == 0 and "resnet50d_ssld.fix_ssld_v2_in1k" in out and "ResNeXt101_32x16d_wsl" in out
    code, out, _ = run(capsys, "info", "resnet50d_ssld", "--json")
    assert json.loads(out)["architecture"] == "resnet50d"


def test_unknown_name_is_one_line_without_traceback():
    result = subprocess.run([sys.executable, "-m", "ssld_zoo", "info", "mobilenetv3_ssld"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "Did you mean: mobilenetv3_large_ssld" in result.stderr


def test_download_of_unpublished_weights_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "download", "resnet50d_ssld", "--to", str(tmp_path))
    assert code == 1 and err.startswith("ssld-zoo: error: Weights 'resnet50d_ssld.ssld_in1k' are not on the Hub yet")
    assert err.count("\n") == 1 and not any(tmp_path.iterdir())


def test_download_keeps_the_same_weights_and_replaces_others_only_with_force(capsys, tmp_path):
    r20 = "resnet20_cifar.sup_cifar10"  # shipped: downloads offline
    weights = tmp_path / r20 / "model.safetensors"
    assert run(capsys, "download", r20, "--to", str(tmp_path))[0] == 0
    shipped = weights.read_bytes()
    code, out, err = run(capsys, "download", r20, "--to", str(tmp_path))
    assert code == 0 and f"{weights} already holds these weights" in err and r20 in out
    weights.write_bytes(b"someone else's weights")
    code, _, err = run(capsys, "download", r20, "--to", str(tmp_path))
    assert code == 1 and err.startswith(f"ssld-zoo: error: {weights} holds other weights (sha256 ")
    assert err.count("\n") == 1 and "pass --force to replace them" in err
    assert weights.read_bytes() == b"someone else's weights" and not list(tmp_path.rglob("*.tmp"))
    assert run(capsys, "download", r20, "--to", str(tmp_path), "--force")[0] == 0
    assert weights.read_bytes() == shipped


def test_download_then_predict_offline(capsys, tmp_path, published_tiny, fake_hub):  # noqa: F811
    code, out, _ = run(capsys, "download", TINY, "--to", str(tmp_path / "dl"))
    assert code == 0 and f"pretrained='{tmp_path / 'dl' / TINY}'" in out
    fake_hub.stop()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "red.png")
    code, out, _ = run(capsys, "predict", TINY, str(tmp_path / "red.png"), "--weights", str(tmp_path / "dl" / TINY))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("red.png") and len(lines) == 6
    assert all("%" in line for line in lines[1:])
    total = sum(float(line.split("%")[0]) for line in lines[1:])
    assert 0 < total <= 100.01


@pytest.mark.parametrize("content, problem", [(None, "does not exist"), (b"not an image", "cannot read image")])
def test_predict_bad_image_is_one_line(capsys, tmp_path, content, problem):
    image = tmp_path / "x.jpg"
    if content is not None:
        image.write_bytes(content)
    code, out, err = run(capsys, "predict", "lcnet_050_ssld", str(image))
    assert code == 1 and out == "" and problem in err and err.count("\n") == 1
