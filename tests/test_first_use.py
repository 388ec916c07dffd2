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
from ssld_zoo.convert.first_use import conversion_cache_root

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

    record = json.loads((conversion_cache_root() / "paddle" / f"{Path(URL_PATH).name}.json").read_text())
    assert record["sha256"] == hashlib.sha256(paddle_file[0]).hexdigest()
    folder = conversion_cache_root() / "converted" / f"{NAME}.ssld_in1k"
    config = json.loads((folder / "config.json").read_text())
    assert config["ssld_zoo"]["origin"]["sha256"] == record["sha256"]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    again = ssld_zoo.create(NAME, pretrained=True)  # from the cache: no second download
    assert host.log == [URL_PATH]
    np.testing.assert_array_equal(logits(again, x), out)


def test_later_use_checks_the_recorded_sha256(host):
    """The PaddleClas file is checked against the sha256 recorded by its first conversion whenever it is converted
    again (here: after the converted file was lost)."""
    ssld_zoo.create(NAME, pretrained=True)
    pdparams = conversion_cache_root() / "paddle" / Path(URL_PATH).name
    data = bytearray(pdparams.read_bytes())
    data[-100] ^= 0xFF
    pdparams.write_bytes(bytes(data))
    (conversion_cache_root() / "converted" / f"{NAME}.ssld_in1k" / "model.safetensors").unlink()
    with pytest.raises(IntegrityError, match="recorded when it was first converted"):
        ssld_zoo.create(NAME, pretrained=True)


def test_a_warm_create_hashes_the_file_it_loads_once_and_nothing_else(host, monkeypatch):
    """Hash first, then load: a warm `create()` reads the converted file once to check it, and never the PaddleClas
    file it does not load."""
    from ssld_zoo import files
    from ssld_zoo.convert import first_use
    from ssld_zoo.weights import hub, resolve
    ssld_zoo.create(NAME, pretrained=True)
    hashed: list[str] = []

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return files.file_sha256(path)
    for module in (hub, resolve, first_use):
        monkeypatch.setattr(module, "file_sha256", counting)
    ssld_zoo.create(NAME, pretrained=True)
    assert hashed == ["model.safetensors"]


def test_a_changed_upstream_file_is_refused(host, paddle_file):
    ssld_zoo.create(NAME, pretrained=True)
    root = conversion_cache_root()
    for path in (root / "paddle" / Path(URL_PATH).name, root / "converted" / f"{NAME}.ssld_in1k" / "model.safetensors"):
        path.unlink()
    host.files[URL_PATH] = paddle_file[0][:-1] + bytes([paddle_file[0][-1] ^ 1])
    with pytest.raises(IntegrityError, match="It was modified or replaced at https://paddle-imagenet"):
        ssld_zoo.create(NAME, pretrained=True)


def test_a_damaged_conversion_is_redone_without_downloading(host):
    reference = ssld_zoo.create(NAME, pretrained=True).state_dict()
    converted = conversion_cache_root() / "converted" / f"{NAME}.ssld_in1k" / "model.safetensors"
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


def test_a_file_that_cannot_be_converted_is_never_trusted(host, paddle_file):
    """A host (or mirror) that first serves garbage must not poison the cache: nothing is recorded, the file is
    removed, and the next attempt downloads again and succeeds once the host serves the real file."""
    from ssld_zoo.errors import InvalidWeightsError
    host.files[URL_PATH] = b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01" + b"garbage" * 50
    with pytest.raises(InvalidWeightsError, match="The downloaded file was removed") as info:
        ssld_zoo.create(NAME, pretrained=True)
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)
    pdparams = conversion_cache_root() / "paddle" / Path(URL_PATH).name
    assert not pdparams.exists() and not pdparams.with_name(pdparams.name + ".json").exists()
    host.files[URL_PATH] = paddle_file[0]
    ssld_zoo.create(NAME, pretrained=True)
    assert host.log == [URL_PATH, URL_PATH]
    record = json.loads(pdparams.with_name(pdparams.name + ".json").read_text())
    assert record["sha256"] == hashlib.sha256(paddle_file[0]).hexdigest()


def test_a_folder_without_its_config_never_loads_tampered_weights(host):
    reference = ssld_zoo.create(NAME, pretrained=True).state_dict()
    folder = conversion_cache_root() / "converted" / f"{NAME}.ssld_in1k"
    (folder / "config.json").unlink()
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # the last float becomes +inf
    weights.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ssld_zoo.create(NAME, pretrained=True)
    assert any("does not match its first-use record" in str(w.message) for w in caught)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert (folder / "config.json").is_file() and host.log == [URL_PATH]  # rebuilt from the verified download


def test_a_damaged_record_is_rebuilt_not_a_traceback(host):
    ssld_zoo.create(NAME, pretrained=True)
    record = conversion_cache_root() / "paddle" / f"{Path(URL_PATH).name}.json"
    for damage in ("{not json", '{"sha256": 1}', "[]"):
        record.write_text(damage)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ssld_zoo.create(NAME, pretrained=True)
        assert any("first-use record" in str(w.message) and "is damaged" in str(w.message) for w in caught)
        assert json.loads(record.read_text())["converted"]["sha256"]


def test_conversion_is_byte_stable(host, tmp_path):
    from ssld_zoo.convert import convert_to_folder
    from ssld_zoo.files import file_sha256
    ssld_zoo.create(NAME, pretrained=True)
    pdparams = conversion_cache_root() / "paddle" / Path(URL_PATH).name
    digests = {file_sha256(convert_to_folder(pdparams, f"{NAME}.ssld_in1k", tmp_path / str(i)).folder /
                           "model.safetensors") for i in range(4)}
    assert len(digests) == 1  # safetensors orders its metadata by a seeded hash map; the header is canonicalised


def test_four_cold_processes_download_and_convert_once(host):
    import subprocess
    import sys
    from conftest import REPO_ROOT
    code = ("import ssld_zoo, torch; m = ssld_zoo.create('resnet34d_ssld', pretrained=True);"
            "print(float(sum(p.double().sum() for p in m.state_dict().values())))")
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-800:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1  # the same weights everywhere
    assert host.log == [URL_PATH]  # one download for all four
