"""First use before publication: `create(name, pretrained=True)` downloads the PaddleClas file from (a loopback stand-in
for) PaddleClas's host, converts it, caches it, records its sha256, and checks it on every later use."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ssld_zoo
from paddle_oracle import Case, build_paddle_model, paddle_outputs
from ssld_zoo.errors import IntegrityError, OfflineError
from ssld_zoo.origin import cache_root

NAME = "resnet34d_ssld"
URL_PATH = "dygraph/legendary_models/ResNet34_vd_ssld_pretrained.pdparams"
CASE = Case(NAME, "legendary_models.resnet", "ResNet34_vd", stages=[])


@pytest.fixture(scope="module")
def paddle_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, object]:
    """A real `paddle.save` file of PaddleClas ResNet34_vd with random weights, and the Paddle model itself."""
    import paddle
    model = build_paddle_model(CASE)
    path = tmp_path_factory.mktemp("paddle") / "ResNet34_vd.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path.read_bytes(), model


@pytest.fixture
def host(isolated_paddle_origin, paddle_file, hf_env):
    isolated_paddle_origin.files[URL_PATH] = paddle_file[0]
    return isolated_paddle_origin


def logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def test_first_use_converts_the_paddleclas_file_and_matches_paddle(host, paddle_file):
    model = ssld_zoo.create(NAME, pretrained=True)
    assert host.log == [URL_PATH]
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    expected, _ = paddle_outputs(paddle_file[1], [], x)
    out = logits(model, x)
    assert np.abs(out - expected).max() <= 1e-4 * np.abs(expected).max()

    record = json.loads((cache_root() / "paddle" / f"{Path(URL_PATH).name}.json").read_text())
    assert record["sha256"] == hashlib.sha256(paddle_file[0]).hexdigest()
    folder = cache_root() / "converted" / f"{NAME}.ssld_in1k"
    config = json.loads((folder / "config.json").read_text())
    assert config["ssld_zoo"]["origin"]["sha256"] == record["sha256"]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    again = ssld_zoo.create(NAME, pretrained=True)  # from the cache: no second download
    assert host.log == [URL_PATH]
    np.testing.assert_array_equal(logits(again, x), out)


def test_later_use_checks_the_recorded_sha256(host):
    ssld_zoo.create(NAME, pretrained=True)
    pdparams = cache_root() / "paddle" / Path(URL_PATH).name
    data = bytearray(pdparams.read_bytes())
    data[-100] ^= 0xFF
    pdparams.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="recorded when it was first downloaded"):
        ssld_zoo.create(NAME, pretrained=True)


def test_a_changed_upstream_file_is_refused(host, paddle_file):
    ssld_zoo.create(NAME, pretrained=True)
    for path in (cache_root() / "paddle" / Path(URL_PATH).name, cache_root() / "converted" / f"{NAME}.ssld_in1k" /
                 "model.safetensors"):
        path.unlink()
    host.files[URL_PATH] = paddle_file[0][:-1] + bytes([paddle_file[0][-1] ^ 1])
    with pytest.raises(IntegrityError, match="It was modified or replaced at https://paddle-imagenet"):
        ssld_zoo.create(NAME, pretrained=True)


def test_a_damaged_conversion_is_redone_without_downloading(host):
    reference = ssld_zoo.create(NAME, pretrained=True).state_dict()
    converted = cache_root() / "converted" / f"{NAME}.ssld_in1k" / "model.safetensors"
    converted.write_bytes(converted.read_bytes()[:-8] + b"\0" * 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ssld_zoo.create(NAME, pretrained=True)
    assert any("Converting the PaddleClas file again" in str(w.message) for w in caught)
    assert host.log == [URL_PATH]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


def test_offline_without_a_conversion_is_one_clear_error(host, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError, match=f"HF_HUB_OFFLINE is set.*ssld-zoo download {NAME}"):
        ssld_zoo.create(NAME, pretrained=True)
    assert host.log == []


def test_download_command_delivers_a_converted_folder(host, tmp_path):
    from ssld_zoo.cli import main
    assert main(["download", NAME, "--to", str(tmp_path)]) == 0
    model = ssld_zoo.create(NAME, pretrained=str(tmp_path / NAME))
    reference = ssld_zoo.create(NAME, pretrained=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[key], rtol=0, atol=0)
