"""`parse_source`: one decision of what a weights argument names, shared by create, train, eval, export, cache, mine."""
from __future__ import annotations

from pathlib import Path

import pytest

from ssld_zoo.errors import InvalidWeightsError
from ssld_zoo.weights.sources import CatalogueSource, FileSource, FolderSource, HubSource, parse_source


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
    from ssld_zoo.train.models import load_state
    for attempt in (lambda: ssld_zoo.create("resnet20_cifar", pretrained="hf-hub:a/b/c"),
                    lambda: load_state("hf-hub:a/b/c"), lambda: load_model("hf-hub:a/b/c")):
        with pytest.raises(InvalidWeightsError, match="must look like 'hf-hub:org/name'"):
            attempt()
