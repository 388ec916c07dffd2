"""Where weights come from: one place decides, one place checks hashes. Imports neither torch nor timm.

Resolution order for `create(name, pretrained=...)`:

1. an explicit local source: a `.safetensors` file, or a folder in Hub layout (`model.safetensors` + `config.json`);
2. an explicit Hub repo: `"hf-hub:org/name[@revision]"` (checked against the sha256 the Hub publishes for the file);
3. `True` / a tag: the catalogue's weights: a file shipped in the checkout (`weights/`), else the pinned Hub file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from . import hub
from .errors import IntegrityError, InvalidWeightsError, WeightsUnavailableError
from .registry import HubFile, WeightEntry

T = TypeVar("T")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HF_HUB_PREFIX = "hf-hub:"
PAPER_ID = "arXiv:2103.05959"
_NOT_CFG_KEYS = ("source", "hf_hub_id", "hf_hub_filename", "url", "file", "state_dict")


def pretrained_cfg_for(weight: WeightEntry) -> dict[str, Any]:
    """The timm pretrained cfg (preprocessing, classes, provenance) that belongs to a catalogue weight."""
    pre = weight.preprocessing
    cfg: dict[str, Any] = dict(
        num_classes=weight.num_classes, input_size=tuple(pre["input_size"]), crop_pct=pre["crop_pct"],
        interpolation=pre["interpolation"], mean=tuple(pre["mean"]), std=tuple(pre["std"]),
        license=weight.data["license"], origin_url=weight.origin_url, paper_ids=PAPER_ID,
        hf_hub_id=weight.hub.repo_id if weight.available else None,
    )
    for key in ("test_input_size", "test_crop_pct"):
        if key in pre:
            cfg[key] = tuple(pre[key]) if isinstance(pre[key], list) else pre[key]
    return cfg


def load_catalogue_weights(weight: WeightEntry, use: Callable[[Path], T], *,
                           cache_dir: str | os.PathLike | None = None) -> T:
    """Return `use(path)` for a catalogue weight's verified local file (shipped file first, then the pinned Hub file)."""
    if weight.file is not None and weight.file.is_file():
        result, problem = hub.use_verified(weight.file, use, weight.hub.sha256, weight.hub.size)
        if problem is not None:
            raise IntegrityError(f"The shipped weight file {weight.file} for '{weight.full_name}' is corrupt "
                                 f"({problem}). Restore it from version control (git checkout -- {weight.file}).")
        return result  # type: ignore[return-value]
    if weight.available:
        return hub.fetch_verified(weight.hub, use, cache_dir=cache_dir, model=weight.model)
    if weight.origin_url and weight.data["origin"]["format"] == "pdparams":
        from .origin import load_converted_origin
        return load_converted_origin(weight, use)
    raise WeightsUnavailableError(
        f"Weights '{weight.full_name}' are not published yet (status: {weight.status}) and have no PaddleClas file "
        "to convert. Use pretrained=False, or pass pretrained='path/to/model.safetensors' or a Hub layout folder. "
        "`ssld-zoo list --pretrained` shows the weights that can be loaded now.")


def use_folder(folder: Path, use: Callable[[Path], T]) -> T:
    """`use(folder/model.safetensors)`, checked against the sha256 and size pinned in the folder's `config.json`."""
    path = folder / WEIGHTS_FILE
    _check_safetensors_path(path, os.fspath(path))
    pinned = read_folder_config(folder).get("ssld_zoo", {})
    result, problem = hub.use_verified(path, use, pinned.get("sha256"), pinned.get("size"))
    if problem is not None:
        raise IntegrityError(f"{path} does not match the sha256 recorded in its config.json ({problem}); the copy is "
                             "damaged. Download or convert it again.")
    return result  # type: ignore[return-value]


def read_folder_config(folder: Path) -> dict[str, Any]:
    """The timm `config.json` of a Hub-layout folder ({} when absent)."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidWeightsError(f"Cannot read {path}: {e}.") from None
    if not isinstance(config, dict):
        raise InvalidWeightsError(f"{path} must hold a JSON object.")
    return config


def cfg_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Pretrained-cfg overlay from a timm `config.json` (preprocessing and classes; never a weight source)."""
    cfg = {k: v for k, v in config.get("pretrained_cfg", {}).items() if k not in _NOT_CFG_KEYS}
    for key in ("input_size", "mean", "std", "test_input_size", "pool_size"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    if "num_classes" in config:
        cfg["num_classes"] = config["num_classes"]
    return cfg


def _check_safetensors_path(path: Path, given: str) -> None:
    if path.suffix != ".safetensors":
        raise InvalidWeightsError(
            f"pretrained='{given}' is not a .safetensors file. ssld_zoo loads only safetensors (no pickles); "
            "convert PaddleClas .pdparams with `ssld-zoo convert`, or save a state dict with "
            "safetensors.torch.save_file.")
    if not path.is_file():
        raise InvalidWeightsError(f"pretrained='{given}': no such file.")


def _parse_hub_id(spec: str) -> tuple[str, str | None]:
    repo, _, revision = spec[len(HF_HUB_PREFIX):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InvalidWeightsError(f"pretrained='{spec}' must look like 'hf-hub:org/name' or 'hf-hub:org/name@revision'.")
    return repo, revision or None


def load_weights(pretrained: str | os.PathLike, weight: WeightEntry, build: Callable[[Path, dict[str, Any]], T], *,
                 cache_dir: str | os.PathLike | None = None) -> T:
    """Resolve an explicit `pretrained=` source (a path or `hf-hub:` id, see the module docstring) to a verified local
    file and return `build(path, cfg)`; `pretrained=True` goes through `load_catalogue_weights` instead.

    `cfg` is the pretrained-cfg overlay that belongs to that file (from its `config.json`, else the catalogue's).
    """
    catalogue_cfg = pretrained_cfg_for(weight)
    if not isinstance(pretrained, (str, os.PathLike)):
        raise InvalidWeightsError(f"pretrained must be False, True, a path or 'hf-hub:org/name', not {pretrained!r}.")
    spec = os.fspath(pretrained)
    if spec.startswith(HF_HUB_PREFIX):
        repo_id, revision = _parse_hub_id(spec)
        config = {}
        try:
            config = read_folder_config(hub.hub_download(HubFile(repo_id, CONFIG_FILE, revision, None, None),
                                                         cache_dir=cache_dir).parent)
        except WeightsUnavailableError:
            pass  # a repo with only model.safetensors still works, with the catalogue's preprocessing
        cfg = {**catalogue_cfg, **cfg_from_config(config)}
        return hub.fetch_verified(HubFile(repo_id, WEIGHTS_FILE, revision, None, None), lambda p: build(p, cfg),
                                  cache_dir=cache_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        cfg = {**catalogue_cfg, **cfg_from_config(read_folder_config(path))}
        return use_folder(path, lambda p: build(p, cfg))
    _check_safetensors_path(path, spec)
    return build(path, catalogue_cfg)
