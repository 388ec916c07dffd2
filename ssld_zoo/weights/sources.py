"""What a weights argument names, decided in one place: `parse_source`. Imports neither torch nor timm.

`pretrained=` and every `--weights` / `--teacher` / MODEL argument is one of: a catalogue name (`name`, `name.tag`),
`hf-hub:org/name[@revision]`, a Hub-layout folder (`model.safetensors` + `config.json`), or a weight file. Only
`ssld_zoo.weights.resolve` acts on the answer: it turns a source into a verified local file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from ssld_zoo.catalogue.registry import HubFile, WeightEntry
from ssld_zoo.errors import InvalidWeightsError
from ssld_zoo.reading import read_json, shorten
from ssld_zoo.weights.validation import check_repo_id, check_revision

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HF_HUB_PREFIX = "hf-hub:"
PAPER_ID = "arXiv:2103.05959"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".th", ".bin", ".pdparams")  # a file, never a catalogue tag


def pretrained_cfg_for(weight: WeightEntry) -> dict[str, Any]:
    """The timm pretrained cfg (preprocessing, classes, provenance) that belongs to a catalogue weight."""
    pre = weight.preprocessing
    cfg: dict[str, Any] = dict(
        num_classes=weight.num_classes, input_size=tuple(pre["input_size"]), crop_pct=pre["crop_pct"],
        interpolation=pre["interpolation"], mean=tuple(pre["mean"]), std=tuple(pre["std"]),
        license=weight.data["license"], origin_url=weight.origin_url, paper_ids=PAPER_ID,
        hf_hub_id=weight.hub.repo_id if weight.shipped or weight.on_hub else None,
    )
    for key in ("test_input_size", "test_crop_pct"):
        if key in pre:
            cfg[key] = tuple(pre[key]) if isinstance(pre[key], list) else pre[key]
    return cfg


def read_folder_config(folder: Path) -> dict[str, Any]:
    """The timm `config.json` of a Hub-layout folder as parsed JSON ({} when absent; bounded and refused in one line
    when it is not a JSON object). Its values are checked by `validation.check_config` where they are used."""
    path = folder / CONFIG_FILE
    if not path.exists():
        return {}
    config = read_json(path, what="timm config", error=InvalidWeightsError)
    if not isinstance(config, dict):
        raise InvalidWeightsError(f"{path} must hold a JSON object.", path=str(path))
    return config


@dataclass(frozen=True)
class CatalogueSource:
    """A catalogue weight by name: `name` or `name.tag` (what `pretrained=True` loads for a zoo name)."""

    name: str


@dataclass(frozen=True)
class HubSource:
    """`hf-hub:org/name[@revision]`: `model.safetensors` (and `config.json`, when there is one) of a Hub repo."""

    repo_id: str
    revision: str | None

    def file(self, filename: str = WEIGHTS_FILE) -> HubFile:
        return HubFile(self.repo_id, filename, self.revision, None, None)


@dataclass(frozen=True)
class FolderSource:
    """A Hub-layout folder: `model.safetensors` + `config.json` (which pins its sha256)."""

    path: Path


@dataclass(frozen=True)
class FileSource:
    """A weight file (its suffix says what it is; whether it exists is for the consumer to say)."""

    path: Path


WeightSource = CatalogueSource | HubSource | FolderSource | FileSource


@overload
def parse_source(spec: str | os.PathLike, *,
                 catalogue: Literal[False] = False) -> HubSource | FolderSource | FileSource: ...


@overload
def parse_source(spec: str | os.PathLike, *, catalogue: bool) -> WeightSource: ...


def parse_source(spec: str | os.PathLike, *, catalogue: bool = False) -> WeightSource:
    """What a weights argument names, decided in one place for `create`, `train`, `eval`, `export`, `cache` and
    `mine`: `hf-hub:org/name[@revision]`, an existing folder, a file path, or (with `catalogue=True`) a catalogue
    name when `spec` is not a path. Raises `InvalidWeightsError` for a malformed Hub id or revision (checked before
    huggingface_hub sees it: `validation.check_repo_id` / `check_revision`)."""
    text = os.fspath(spec)
    if text.startswith(HF_HUB_PREFIX):
        repo, _, revision = text[len(HF_HUB_PREFIX):].partition("@")
        try:
            check_repo_id(repo)
            if revision:
                check_revision(revision)
        except InvalidWeightsError as e:
            raise InvalidWeightsError(f"{shorten(text)} must look like 'hf-hub:org/name' or "
                                      f"'hf-hub:org/name@revision': {e}", key=text) from e
        return HubSource(repo, revision or None)
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if (catalogue and not path.exists() and "/" not in text and os.sep not in text
            and not text.endswith(WEIGHT_SUFFIXES)):
        return CatalogueSource(text)  # not a path: a name (an unknown one is refused with suggestions when used)
    return FileSource(path)
