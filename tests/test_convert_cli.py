"""`ssld-zoo convert` writes a Hub-layout folder that plain timm loads from the (loopback) Hub and that computes what
PaddleClas computes; bad inputs are one clear line."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python
from paddle_oracle import Case, build_paddle_model, paddle_outputs
from ssld_zoo.cli import main
from ssld_zoo.files import file_sha256
from ssld_zoo.weights.publish import publish_folder

CASE = Case("lcnet_050_ssld", "legendary_models.pp_lcnet", "PPLCNet_x0_5", stages=[])
REPO = "ssld-zoo/lcnet_050_ssld.ssld_in1k"


@pytest.fixture(scope="module")
def paddle_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    import paddle
    model = build_paddle_model(CASE)
    path = tmp_path_factory.mktemp("paddle") / "PPLCNet_x0_5_ssld_pretrained.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path, model


def convert(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["convert", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_writes_a_folder_plain_timm_and_transformers_load_from_the_hub(capsys, tmp_path, paddle_file, fake_hub):
    path, paddle_model = paddle_file
    out_dir = tmp_path / "out"
    code, out, _ = convert(capsys, "--paddle", str(path), "--model", "lcnet_050_ssld", "--out", str(out_dir))
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    sha256 = file_sha256(out_dir / "model.safetensors")
    assert f"sha256: {sha256}" in out and f"origin sha256: {file_sha256(path)}" in out
    config = json.loads((out_dir / "config.json").read_text())
    assert config["architecture"] == "lcnet_050" and config["num_classes"] == 1000
    assert config["ssld_zoo"]["sha256"] == sha256
    card = (out_dir / "README.md").read_text()
    for needle in ("license: apache-2.0", "library_name: timm", "arxiv:2103.05959", "model-index:", "value: 66.1",
                   "PPLCNet_x0_5_ssld_pretrained.pdparams", "@article{cui2021beyond"):
        assert needle in card

    revision = publish_folder(out_dir, REPO)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = run_python(
        "import sys, numpy as np, timm, torch\n"
        "from transformers import AutoModelForImageClassification\n"
        f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"m = timm.create_model('hf-hub:{REPO}@{revision}', pretrained=True).eval()\n"
        f"np.save({str(tmp_path / 'timm.npy')!r}, m(x).detach().numpy())\n"
        f"w = AutoModelForImageClassification.from_pretrained('{REPO}', revision='{revision}').eval()\n"
        f"np.save({str(tmp_path / 'transformers.npy')!r}, w(pixel_values=x).logits.detach().numpy())\n"
        "assert 'ssld_zoo' not in sys.modules, 'plain timm and transformers must not need ssld_zoo'\n")
    assert result.returncode == 0, result.stderr
    expected, _ = paddle_outputs(paddle_model, [], x)
    for loader in ("timm", "transformers"):
        actual = np.load(tmp_path / f"{loader}.npy")
        assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max(), loader


def test_wrong_model_is_one_line(capsys, tmp_path, paddle_file):
    code, _, err = convert(capsys, "--paddle", str(paddle_file[0]), "--model", "mobilenetv1_ssld", "--out",
                           str(tmp_path / "o"))
    assert code == 1 and err.count("\n") == 1 and "PaddleClas MobileNetV1" in err and "Check --model" in err
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_malicious_file_is_one_line_and_nothing_runs(capsys, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            import os
            return os.system, (f"touch {marker}",)

    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(pickle.dumps({"conv1.conv.weight": Payload()}, protocol=4))
    code, _, err = convert(capsys, "--paddle", str(bad), "--model", "lcnet_050_ssld", "--out", str(tmp_path / "o"))
    assert code == 1 and err.count("\n") == 1 and "system" in err and not marker.exists()


def _damaged(arrays: dict, damage: str) -> dict:
    """The Paddle state dict with one tensor damaged as `damage` says."""
    arrays = dict(arrays)
    weight = next(k for k, v in arrays.items() if v.ndim == 4)
    variance = next(k for k in arrays if k.endswith("._variance"))
    if damage == "nan":
        arrays[weight] = arrays[weight].copy()
        arrays[weight].flat[3] = np.nan
    elif damage == "inf":
        arrays[weight] = arrays[weight].copy()
        arrays[weight].flat[0] = -np.inf
    elif damage == "negative variance":
        arrays[variance] = arrays[variance] - arrays[variance].max() - 1.0
    else:  # an integer, bool or complex tensor of the right shape
        arrays[weight] = arrays[weight].astype(damage)
    return arrays


@pytest.mark.parametrize("damage, expected", [
    ("nan", "'conv_stem.weight' holds NaN or infinite values"),
    ("inf", "'conv_stem.weight' holds NaN or infinite values"),
    ("negative variance", "holds negative BatchNorm variances"),
    ("int32", "'conv_stem.weight' is int32, not a floating-point tensor"),
    ("bool", "'conv_stem.weight' is bool, not a floating-point tensor"),
    ("complex64", "'conv_stem.weight' is complex64, not a floating-point tensor"),
])
def test_weights_no_model_should_load_are_refused_before_anything_is_written(capsys, tmp_path, paddle_file, damage,
                                                                            expected):
    from ssld_zoo.convert import read_pdparams
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(pickle.dumps(_damaged(read_pdparams(paddle_file[0]), damage), protocol=4))
    out_dir = tmp_path / "o"
    code, out, err = convert(capsys, "--paddle", str(bad), "--model", "lcnet_050_ssld", "--out", str(out_dir))
    assert code == 1 and err.count("\n") == 1 and expected in err and "nothing was written" in err, err
    assert "sha256" not in out and not out_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pdparams"]  # no file, no temporary file


def test_missing_file_and_unknown_model_are_one_line(capsys, tmp_path, paddle_file):
    code, _, err = convert(capsys, "--paddle", str(tmp_path / "nope.pdparams"), "--model", "lcnet_050_ssld",
                           "--out", str(tmp_path / "o"))
    assert code == 1 and err.count("\n") == 1 and "nope.pdparams" in err
    code, _, err = convert(capsys, "--paddle", str(paddle_file[0]), "--model", "lcnet_05_ssld", "--out",
                           str(tmp_path / "o"))
    assert code == 1 and err.count("\n") == 1 and "lcnet_050_ssld" in err


def test_every_paddleclas_catalogue_model_has_a_converter():
    import ssld_zoo
    from ssld_zoo.convert import supported_models
    from ssld_zoo.catalogue.registry import get_weight_entry
    paddle = [n for n in ssld_zoo.list_models() if get_weight_entry(n).data["origin"]["format"] == "pdparams"]
    assert supported_models() == paddle and len(paddle) == 30
