"""`create()`, `get_transform()` and timm registration, end to end with real weights on the loopback Hub."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import timm
import torch
from conftest import run_python, sha256
from safetensors.torch import save_file

import ssld_zoo
from ssld_zoo.errors import IntegrityError, InvalidWeightsError, WeightsUnavailableError
from ssld_zoo.weights.layout import download_folder

TINY = "tiny_resnet_ssld"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> tuple[dict[str, torch.Tensor], bytes]:
    """A real timm `test_resnet` state dict (random init, fixed seed) and its safetensors bytes."""
    torch.manual_seed(0)
    state = timm.create_model("test_resnet").state_dict()
    path = tmp_path_factory.mktemp("tiny") / "model.safetensors"
    save_file(state, str(path))
    return state, path.read_bytes()


@pytest.fixture
def published_tiny(fake_hub, extra_catalogue, tiny_weights):
    """`tiny_resnet_ssld` published on the loopback Hub and pinned in an extra catalogue."""
    state, data = tiny_weights
    commit = fake_hub.publish(f"ssld-zoo/{TINY}.ssld_in1k", {"model.safetensors": data, "config.json": b"{}"})
    extra_catalogue(repo_id=f"ssld-zoo/{TINY}.ssld_in1k", revision=commit, sha256=sha256(data), size=len(data))
    return state, commit


def assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    own = model.state_dict()
    for key, value in state.items():
        if not key.startswith(skip):
            assert torch.equal(own[key], value), key


def test_done_when_command_and_timm_registration_after_import():
    code = ("import ssld_zoo, timm; m = ssld_zoo.create('resnet50d_ssld', features_only=True, out_indices=(1,2,3,4)); "
            "print(m.feature_info.channels()); "
            "print(type(timm.create_model('mobilenetv3_large_ssld')).__name__, len(timm.list_models('*_ssld')))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[256, 512, 1024, 2048]", "MobileNetV3 32"]


def test_timm_imported_first_then_ssld_zoo():
    result = run_python("import timm, ssld_zoo; print(timm.create_model('resnet34d_ssld').layer1[0].downsample[1])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Conv2d(64, 64")


def test_import_and_catalogue_queries_load_neither_torch_nor_timm():
    code = ("import sys, ssld_zoo; ssld_zoo.list_models(); ssld_zoo.model_info('resnet50d_ssld'); "
            "from ssld_zoo.cli import main; main(['info', 'resnet50d_ssld']); "
            "print([m for m in ('torch', 'timm', 'torchvision') if m in sys.modules])")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_pretrained_true_downloads_verified_weights(published_tiny, fake_hub):
    state, commit = published_tiny
    model = ssld_zoo.create(TINY, pretrained=True)
    assert_same_weights(model, state)
    assert f"/ssld-zoo/{TINY}.ssld_in1k/resolve/{commit}/model.safetensors" in fake_hub.requests("HEAD")
    assert model.pretrained_cfg["input_size"] == (3, 160, 160)


def test_timm_create_model_uses_the_same_verified_path(published_tiny):
    state, _ = published_tiny
    ssld_zoo.create(TINY)  # registers the extra catalogue's names with timm
    assert_same_weights(timm.create_model(TINY, pretrained=True), state)


def test_features_only_and_new_head_keep_the_body_weights(published_tiny):
    state, _ = published_tiny
    model = ssld_zoo.create(TINY, pretrained=True, num_classes=7)
    assert model.get_classifier().out_features == 7
    assert_same_weights(model, state, skip=("fc.",))
    backbone = ssld_zoo.create(TINY, pretrained=True, features_only=True, out_indices=(2, 3))
    assert len(backbone(torch.zeros(1, 3, 64, 64))) == 2
    assert torch.equal(backbone.state_dict()["conv1.0.weight"], state["conv1.0.weight"])


def test_wrong_catalogue_sha256_is_a_clear_error(fake_hub, extra_catalogue, tiny_weights):
    _, data = tiny_weights
    commit = fake_hub.publish(f"ssld-zoo/{TINY}.ssld_in1k", {"model.safetensors": data})
    extra_catalogue(repo_id=f"ssld-zoo/{TINY}.ssld_in1k", revision=commit, sha256="f" * 64, size=len(data))
    with pytest.raises(IntegrityError, match=f"expected {'f' * 64}"):
        ssld_zoo.create(TINY, pretrained=True)


def test_corrupt_cache_is_repaired_through_create(published_tiny):
    state, _ = published_tiny
    ssld_zoo.create(TINY, pretrained=True)
    blobs = list(Path(os.environ["HF_HUB_CACHE"]).glob(f"models--ssld-zoo--{TINY}.ssld_in1k/blobs/*"))
    blob = max(blobs, key=lambda p: p.stat().st_size)
    blob.write_bytes(b"\0" * blob.stat().st_size)
    assert_same_weights(ssld_zoo.create(TINY, pretrained=True), state)


def test_unpublished_weights_without_paddle_file_are_a_clear_error():
    expected = "not on the Hub yet.*ResNet50_vd_ssld_pretrained.pdparams answered HTTP 404"
    with pytest.raises(WeightsUnavailableError, match=expected):
        ssld_zoo.create("resnet50d_ssld", pretrained=True)


def test_pretrained_local_file(tmp_path, tiny_weights, extra_catalogue):
    extra_catalogue()
    state, data = tiny_weights
    path = tmp_path / "weights.safetensors"
    path.write_bytes(data)
    assert_same_weights(ssld_zoo.create(TINY, pretrained=str(path)), state)
    assert_same_weights(ssld_zoo.create(TINY, pretrained=path), state)


def test_download_folder_loads_offline_and_in_plain_timm(published_tiny, tmp_path, fake_hub):
    state, _ = published_tiny
    folder = download_folder(TINY, tmp_path / "dl")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    fake_hub.stop()
    assert_same_weights(ssld_zoo.create(TINY, pretrained=folder), state)
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "test_resnet"  # stock timm arch: loads without ssld_zoo
    assert_same_weights(timm.create_model(f"local-dir:{folder}", pretrained=True), state)


def test_damaged_folder_copy_is_detected(published_tiny, tmp_path):
    folder = download_folder(TINY, tmp_path / "dl")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the sha256 recorded in its config.json"):
        ssld_zoo.create(TINY, pretrained=folder)


def test_hf_hub_string_with_revision_and_config(fake_hub, extra_catalogue, tiny_weights):
    extra_catalogue()
    state, data = tiny_weights
    config = {"architecture": "test_resnet", "num_classes": 1000,
              "pretrained_cfg": {"input_size": [3, 96, 96], "crop_pct": 1.0, "interpolation": "bicubic"}}
    first = fake_hub.publish("someone/tiny", {"model.safetensors": data, "config.json": json.dumps(config).encode()})
    fake_hub.publish("someone/tiny", {"model.safetensors": b"not weights", "config.json": b"{}"})
    model = ssld_zoo.create(TINY, pretrained=f"hf-hub:someone/tiny@{first}")
    assert_same_weights(model, state)
    assert model.pretrained_cfg["input_size"] == (3, 96, 96)
    assert model.pretrained_cfg["interpolation"] == "bicubic"


@pytest.mark.parametrize("pretrained, problem", [
    ("weights.pth", "not a .safetensors file"),
    ("missing.safetensors", "no such file"),
    ("hf-hub:just-a-name", "must look like 'hf-hub:org/name'"),
    (3, "pretrained must be False, True"),
])
def test_bad_pretrained_values(tmp_path, monkeypatch, pretrained, problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.pth").write_bytes(b"pickle")
    with pytest.raises(InvalidWeightsError, match=problem):
        ssld_zoo.create("lcnet_050_ssld", pretrained=pretrained)


def test_get_transform_follows_the_weights():
    eval_tf = repr(ssld_zoo.get_transform("resnet50d_ssld"))
    assert "Resize(size=256, interpolation=bilinear" in eval_tf and "CenterCrop(size=(224, 224))" in eval_tf
    assert "Resize(size=232, interpolation=bicubic" in repr(ssld_zoo.get_transform("hgnet_tiny_ssld"))
    assert "Resize(size=236, interpolation=bicubic" in repr(ssld_zoo.get_transform("hgnet_base_ssld"))
    fix = repr(ssld_zoo.get_transform("resnet50d_ssld.fix_ssld_v2_in1k"))
    assert "Resize(size=320, interpolation=bilinear" in fix and "CenterCrop(size=(320, 320))" in fix
    assert "RandomResizedCrop" in repr(ssld_zoo.get_transform("resnet50d_ssld", train=True))
    model = ssld_zoo.create("lcnet_050_ssld")
    assert repr(ssld_zoo.get_transform(model)) == repr(ssld_zoo.get_transform("lcnet_050_ssld"))


def test_a_catalogue_added_later_reaches_timm_for_a_name_it_already_holds(tmp_path, monkeypatch):
    """issue 23 item 9: `add_catalogue()` overriding a name timm registered at import (and that was created before)
    gives it the new entry's tags, weights and preprocessing in `create()` and in `timm.create_model`."""
    import shutil

    from safetensors.torch import load_file

    from ssld_zoo.catalogue import registry
    from ssld_zoo.errors import UnknownModelError
    ssld_zoo.create("resnet20_cifar.sup_cifar10", pretrained=True)
    other = registry.get_weight_entry("resnet20_cifar.ssld_r56_cifar10").file
    shutil.copyfile(other, tmp_path / "mytag.safetensors")
    data = (tmp_path / "mytag.safetensors").read_bytes()
    entry = json.loads(registry.BUILTIN_CATALOGUE.read_text())["models"]["resnet20_cifar"]
    weight = json.loads(json.dumps(entry["weights"]["sup_cifar10"]))
    weight["file"] = "mytag.safetensors"
    weight["hub"].update(repo_id="me/resnet20_cifar.mytag", sha256=sha256(data), size=len(data))
    weight["preprocessing"]["mean"] = [0.5, 0.5, 0.5]
    entry["weights"]["mytag"] = weight
    (tmp_path / "catalogue.json").write_text(json.dumps({"schema_version": 1, "models": {"resnet20_cifar": entry}}))
    added: list[Path] = []
    monkeypatch.setattr(registry, "_extra_catalogues", added)
    try:
        ssld_zoo.add_catalogue(tmp_path / "catalogue.json")
        for model in (timm.create_model("resnet20_cifar.mytag", pretrained=True),
                      ssld_zoo.create("resnet20_cifar.mytag", pretrained=True)):
            assert_same_weights(model, load_file(other))
            assert model.pretrained_cfg["tag"] == "mytag" and model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
        assert "Normalize(mean=tensor([0.5000, 0.5000, 0.5000])" in repr(ssld_zoo.get_transform("resnet20_cifar.mytag"))
    finally:
        added.clear()
        registry.refresh()
    with pytest.raises(UnknownModelError, match="no weights tagged 'mytag'"):
        ssld_zoo.create("resnet20_cifar.mytag", pretrained=True)
    with pytest.raises(RuntimeError, match="Invalid pretrained tag"):  # timm follows the catalogue back
        timm.create_model("resnet20_cifar.mytag")
