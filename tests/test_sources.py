"""`parse_source` (what a weights argument names) and `resolve` (the verified local file it names): one decision and
one way in, shared by create, train, eval, export, cache and mine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssld_zoo.catalogue.registry import get_weight_entry
from ssld_zoo.errors import InvalidWeightsError, UnknownModelError
from ssld_zoo.weights.resolve import resolve
from ssld_zoo.weights.sources import CatalogueSource, FileSource, FolderSource, HubSource, parse_source

R20 = "resnet20_cifar.sup_cifar10"  # a weight shipped in the checkout


def test_each_kind_of_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    assert parse_source("hf-hub:org/name") == HubSource("org/name", None)
    assert parse_source("hf-hub:org/name@0123abc") == HubSource("org/name", "0123abc")
    assert parse_source(tmp_path / "folder") == FolderSource(tmp_path / "folder")
    assert parse_source("weights/model.safetensors") == FileSource(Path("weights/model.safetensors"))
    assert parse_source("model.safetensors") == FileSource(Path("model.safetensors"))  # without catalogue=True
    assert parse_source("resnet50d_ssld.ssld_in1k", catalogue=True) == CatalogueSource("resnet50d_ssld.ssld_in1k")
    (tmp_path / "resnet50d_ssld.ssld_in1k").write_bytes(b"")  # an existing file of that name is the file
    assert parse_source("resnet50d_ssld.ssld_in1k", catalogue=True) == FileSource(Path("resnet50d_ssld.ssld_in1k"))
    assert parse_source("hf-hub:org/name").file().filename == "model.safetensors"


@pytest.mark.parametrize("bad", ["hf-hub:", "hf-hub:name", "hf-hub:a/b/c", "hf-hub:org/na me", "hf-hub:org/--x"])
def test_malformed_hub_ids_are_one_clear_error(bad):
    with pytest.raises(InvalidWeightsError, match="must look like 'hf-hub:org/name'") as caught:
        parse_source(bad)
    assert caught.value.key == bad


def test_every_consumer_refuses_a_malformed_hub_id_the_same_way(tmp_path):
    import ssld_zoo
    from ssld_zoo.tools.evaluate import load_model
    from ssld_zoo.train.networks import build_network
    from ssld_zoo.train.recipe import ModelSpec
    for attempt in (lambda: ssld_zoo.create("resnet20_cifar", pretrained="hf-hub:a/b/c"),
                    lambda: build_network(ModelSpec("resnet20_cifar", "hf-hub:a/b/c"), "teacher"),
                    lambda: load_model("hf-hub:a/b/c"), lambda: resolve("hf-hub:a/b/c")):
        with pytest.raises(InvalidWeightsError, match="must look like 'hf-hub:org/name'"):
            attempt()


def test_a_catalogue_weight_resolves_to_its_verified_file_and_cfg():
    weight = get_weight_entry(R20)
    found = resolve(R20)
    assert (found.path, found.sha256, found.weight, found.name) == (weight.file, weight.hub.sha256, weight, R20)
    assert (found.architecture, found.model_name, found.pretrained_cfg["num_classes"]) == ("resnet20_cifar", R20, 10)
    assert resolve(weight) == found
    with pytest.raises(InvalidWeightsError, match="not a .safetensors file"):  # a name is a path when told so
        resolve(R20, catalogue=False)
    with pytest.raises(UnknownModelError, match="Did you mean"):
        resolve("resnet20_cifa")


def test_a_folder_resolves_to_its_file_checked_against_its_config(tmp_path):
    from ssld_zoo.weights.layout import download_folder
    folder = download_folder(R20, tmp_path)
    found = resolve(folder)
    config = json.loads((folder / "config.json").read_text())
    assert (found.path, found.sha256) == (folder / "model.safetensors", config["ssld_zoo"]["sha256"])
    assert found.weight == get_weight_entry(R20) and found.pretrained_cfg["input_size"] == (3, 32, 32)
    bare = resolve(folder / "model.safetensors")
    assert (bare.sha256, bare.weight, bare.pretrained_cfg) == (None, None, {})  # nothing pins a bare file


def test_a_torch_checkpoint_is_converted_once_and_only_for_training(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file
    state = load_file(get_weight_entry(R20).file)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "r20.th")
    with pytest.raises(InvalidWeightsError, match="not a .safetensors file"):
        resolve(tmp_path / "r20.th", catalogue=False)
    first = resolve(tmp_path / "r20.th", catalogue=False, checkpoints=True)
    assert first.path.suffix == ".safetensors" and first.sha256 is None  # nothing pins a file of your own
    converted = load_file(first.path)
    assert converted.keys() == state.keys() and all(torch.equal(converted[k], v) for k, v in state.items())
    monkeypatch.setattr(torch, "load", None)  # a second use reads the cached conversion, not the checkpoint
    assert resolve(tmp_path / "r20.th", catalogue=False, checkpoints=True).path == first.path


def test_a_data_folder_checkpoint_is_converted_once_then_only_its_conversion_is_hashed(monkeypatch, shared_data):
    """The CIFAR-10 teachers are PyTorch files in the data folder: checked against the catalogue's origin sha256 and
    converted on first use; later uses hash the converted file only (the file they load)."""
    from ssld_zoo import files
    from ssld_zoo.weights import hub
    from ssld_zoo.weights import resolve as module
    weight = get_weight_entry("resnet20_cifar.akamaster_cifar10")
    first = resolve(weight, data_root=shared_data)
    assert first.sha256 is not None and first.path.name == f"{weight.origin_sha256}.safetensors"
    hashed: list[str] = []

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return files.file_sha256(path)
    monkeypatch.setattr(hub, "file_sha256", counting)
    monkeypatch.setattr(module, "file_sha256", counting)
    assert resolve(weight, data_root=shared_data) == first
    assert hashed == [first.path.name]
    first.path.write_bytes(first.path.read_bytes()[:-4] + b"\0\0\0\0")  # a damaged conversion is made again
    assert resolve(weight, data_root=shared_data).sha256 == first.sha256
    first.path.with_suffix(".json").write_text("[]")  # and so is one whose record is damaged
    assert resolve(weight, data_root=shared_data).sha256 == first.sha256
