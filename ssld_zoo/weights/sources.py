"""Where weights come from: one place decides, one place checks hashes. Imports neither torch nor timm.

Resolution order for `create(name, pretrained=...)`:

1. an explicit local source: a `.safetensors` file, or a folder in Hub layout (`model.safetensors` + `config.json`);
2. an explicit Hub repo: `"hf-hub:org/name[@revision]"` (checked against the sha256 the Hub publishes for the file);
3. `True` / a tag: the catalogue's weights: a file shipped in the checkout (`weights/`), else the pinned Hub file,
   else a Hub mirror that `ssld-zoo release` verified equal (pinned by commit and sha256), else a `data_file` in
   the data folder (`data_root=`, else `$SSLD_ZOO_DATA`; a PyTorch checkpoint checked against the catalogue's
   `origin.sha256` on every use and handed on as safetensors), else the converted PaddleClas file (the loader that
   `ssld_zoo.convert` registers with `register_origin_loader`).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Literal, TypeVar, overload

from ssld_zoo.weights import hub
from ssld_zoo.paths import SHARED_DATA, Missing, find_data_file
from ssld_zoo.errors import IntegrityError, InvalidWeightsError, WeightsUnavailableError
from ssld_zoo.catalogue.registry import INTERPOLATIONS, HubFile, WeightEntry

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
        hf_hub_id=weight.hub.repo_id if weight.shipped or weight.on_hub else None,
    )
    for key in ("test_input_size", "test_crop_pct"):
        if key in pre:
            cfg[key] = tuple(pre[key]) if isinstance(pre[key], list) else pre[key]
    return cfg


OriginLoader = Callable[[WeightEntry, Callable[[Path], Any]], Any]
ORIGIN_LOADERS: dict[str, OriginLoader] = {}  # origin format -> converter of the original file (the layers above)


def register_origin_loader(origin_format: str, loader: OriginLoader) -> None:
    """Let `load_catalogue_weights` turn a weight's original file of `origin_format` into verified safetensors:
    `ssld_zoo.convert` registers its first-use conversion for "pdparams" (the conversion layer sits above this one,
    so it plugs itself in rather than being imported from here)."""
    ORIGIN_LOADERS[origin_format] = loader


def load_catalogue_weights(weight: WeightEntry, use: Callable[[Path], T], *, cache_dir: str | os.PathLike | None = None,
                           data_root: str | os.PathLike | None = None) -> T:
    """Return `use(path)` for a catalogue weight's verified local `.safetensors` file (shipped file first, then the
    pinned Hub file, the data folder's file, the converted PaddleClas file)."""
    if weight.file is not None and weight.file.is_file():
        result, problem = hub.use_verified(weight.file, use, weight.hub.sha256, weight.hub.size)
        if problem is not None:
            raise IntegrityError(f"The shipped weight file {weight.file} for '{weight.full_name}' is corrupt "
                                 f"({problem}). Restore it from version control (git checkout -- {weight.file}).")
        return result  # type: ignore[return-value]
    if weight.on_hub:
        return hub.fetch_verified(weight.hub, use, cache_dir=cache_dir, model=weight.model)
    mirror = weight.verified_mirror
    if mirror is not None:
        return hub.fetch_verified(mirror, use, cache_dir=cache_dir, model=weight.model)
    if weight.data_file is not None:
        return _use_data_file(weight, weight.data_file, use, data_root)
    origin_format = weight.data["origin"]["format"] if weight.origin_url else None
    if origin_format in ORIGIN_LOADERS:
        return ORIGIN_LOADERS[origin_format](weight, use)
    raise WeightsUnavailableError(
        f"Weights '{weight.full_name}' are not published yet (status: {weight.status}) and have no PaddleClas file "
        "to convert. Use pretrained=False, or pass pretrained='path/to/model.safetensors' or a Hub layout folder. "
        "`ssld-zoo list --pretrained` shows the weights that can be loaded now.")


def _use_data_file(weight: WeightEntry, data_file: str, use: Callable[[Path], T],
                   data_root: str | os.PathLike | None) -> T:
    """`use(path)` with a temporary safetensors copy of `data_file` (a PyTorch checkpoint in the data folder), which
    is checked against the catalogue's `origin.sha256` and `origin.size` while it is read."""
    found = find_data_file(data_file, data_root)
    if isinstance(found, Missing):
        raise WeightsUnavailableError(
            f"Weights '{weight.full_name}' are read from the data folder, but {found.reason}. Download "
            f"{PurePosixPath(data_file).name} from {weight.origin_url} (or copy it from {SHARED_DATA}, {data_file}) "
            f"into {found.put_in}.")
    origin = weight.data["origin"]
    with tempfile.TemporaryDirectory(prefix="ssld_zoo_") as tmp:
        def convert_and_use(path: Path) -> T:
            converted = Path(tmp) / WEIGHTS_FILE
            _torch_checkpoint_to_safetensors(path, converted)
            return use(converted)

        result, problem = hub.use_verified(found, convert_and_use, origin["sha256"], origin.get("size"))
    if problem is not None:
        raise IntegrityError(f"The data file {found} for '{weight.full_name}' does not match the catalogue "
                             f"({problem}); it is damaged or another file. Download it again from {weight.origin_url}.")
    return result  # type: ignore[return-value]


def _torch_checkpoint_to_safetensors(path: Path, out: Path) -> None:
    """Save the state dict of a PyTorch checkpoint (bare, or under 'state_dict'; DataParallel's `module.` prefix
    removed) as safetensors. Read with `weights_only=True`, so the file cannot run code."""
    import torch
    from safetensors.torch import save_file
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    save_file({k.removeprefix("module."): v.contiguous() for k, v in state.items()}, os.fspath(out))


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


MAX_INPUT_PX = 4096  # a side; the largest SSLD weight is evaluated at 320
MAX_CLASSES = 100_000


def cfg_from_config(config: dict[str, Any], where: str = CONFIG_FILE) -> dict[str, Any]:
    """Pretrained-cfg overlay from a timm `config.json` (preprocessing and classes; never a weight source), with
    every value checked before anything is built from it (`where` names the file in the error)."""
    pretrained = config.get("pretrained_cfg", {})
    if not isinstance(pretrained, dict):
        raise InvalidWeightsError(f"{where}: 'pretrained_cfg' must be an object.", path=where, key="pretrained_cfg")
    cfg = {k: v for k, v in pretrained.items() if k not in _NOT_CFG_KEYS}
    for key in ("input_size", "mean", "std", "test_input_size", "pool_size"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    if "num_classes" in config:
        cfg["num_classes"] = config["num_classes"]
    _check_cfg(cfg, where)
    return cfg


def _check_cfg(cfg: dict[str, Any], where: str) -> None:
    def refuse(key: str, what: str) -> None:
        raise InvalidWeightsError(f"{where}: {key} {cfg[key]!r} {what}; fix or re-create the folder.", path=where,
                                  key=key)

    def whole(value: Any, low: int, high: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    channels = 3
    for key in ("input_size", "test_input_size"):
        size = cfg.get(key)
        if size is not None:
            if not (isinstance(size, tuple) and len(size) == 3 and whole(size[0], 1, 16)
                    and all(whole(v, 1, MAX_INPUT_PX) for v in size[1:])):
                refuse(key, f"is not [channels, height, width] with 1-16 channels and 1-{MAX_INPUT_PX} px a side")
            channels = size[0] if key == "input_size" else channels
    if "crop_pct" in cfg and not (number(cfg["crop_pct"]) and 0 < cfg["crop_pct"] <= 1):
        refuse("crop_pct", "is not a number in (0, 1]")
    if "num_classes" in cfg and not whole(cfg["num_classes"], 0, MAX_CLASSES):
        refuse("num_classes", f"is not a whole number from 0 to {MAX_CLASSES:,}")
    for key in ("mean", "std"):
        values = cfg.get(key)
        if values is not None and not (isinstance(values, tuple) and len(values) == channels
                                       and all(number(v) for v in values) and (key == "mean" or min(values) > 0)):
            refuse(key, f"is not {channels} finite numbers" + (" above 0" if key == "std" else ""))
    if "interpolation" in cfg and cfg["interpolation"] not in INTERPOLATIONS:
        refuse("interpolation", f"is not one of {', '.join(INTERPOLATIONS)} (what ssld_zoo's transforms resize with)")


def _check_safetensors_path(path: Path, given: str) -> None:
    if path.suffix != ".safetensors":
        raise InvalidWeightsError(
            f"pretrained='{given}' is not a .safetensors file. ssld_zoo loads only safetensors (no pickles); "
            "convert PaddleClas .pdparams with `ssld-zoo convert`, or save a state dict with "
            "safetensors.torch.save_file.")
    if not path.is_file():
        raise InvalidWeightsError(f"pretrained='{given}': no such file.")
    problem = safetensors_problem(path)
    if problem:
        raise InvalidWeightsError(f"pretrained='{given}' is not a readable safetensors file ({problem}); it is "
                                  "truncated or another format. Download or convert it again.")


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with the header of a safetensors file (None when it reads as one), without loading tensors."""
    import struct
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{size} bytes, shorter than a header"
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                return f"the header claims {length:,} bytes, the file has {size - 8:,} after it"
            header = json.loads(f.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "its header does not describe tensors"
    if end > size - 8 - length:
        return "its tensors reach beyond the end of the file"
    return None


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
    name when `spec` is not a path. Raises `InvalidWeightsError` for a malformed Hub id."""
    text = os.fspath(spec)
    if text.startswith(HF_HUB_PREFIX):
        repo, _, revision = text[len(HF_HUB_PREFIX):].partition("@")
        from huggingface_hub.utils import HFValidationError, validate_repo_id
        try:
            validate_repo_id(repo)
            valid = repo.count("/") == 1 and (not revision or "/" not in revision or revision.startswith("refs/"))
        except HFValidationError:
            valid = False
        if not valid:
            raise InvalidWeightsError(f"'{text}' must look like 'hf-hub:org/name' or 'hf-hub:org/name@revision' "
                                      "(letters, digits, '-', '_' and '.' in org and name).", key=text)
        return HubSource(repo, revision or None)
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if catalogue and not path.exists() and "/" not in text and os.sep not in text:
        return CatalogueSource(text)  # not a path: a name (an unknown one is refused with suggestions when used)
    return FileSource(path)


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
    source = parse_source(spec)
    if isinstance(source, HubSource):
        cfg = {**catalogue_cfg, **cfg_from_config(hub_config(source, cache_dir=cache_dir),
                                                  f"{CONFIG_FILE} of {source.repo_id}")}
        return hub.fetch_verified(source.file(), lambda p: build(_readable_hub_file(p, source), cfg),
                                  cache_dir=cache_dir)
    if isinstance(source, FolderSource):
        cfg = {**catalogue_cfg, **cfg_from_config(read_folder_config(source.path), str(source.path / CONFIG_FILE))}
        return use_folder(source.path, lambda p: build(p, cfg))
    _check_safetensors_path(source.path, spec)
    return build(source.path, catalogue_cfg)


def _readable_hub_file(path: Path, source: HubSource) -> Path:
    """`path`, the downloaded weight file of `source`, refused with one clear error when it is not safetensors (its
    sha256 matches what the Hub published, so downloading it again would not help)."""
    problem = safetensors_problem(path)
    if problem:
        at = f"@{source.revision}" if source.revision else ""
        raise InvalidWeightsError(f"{WEIGHTS_FILE} of 'hf-hub:{source.repo_id}{at}' is not a readable safetensors "
                                  f"file ({problem}); the repo holds another format or a damaged upload. Ask its "
                                  "owner to re-upload it, or pass another weights source.", repo_id=source.repo_id,
                                  filename=WEIGHTS_FILE, revision=source.revision, path=str(path))
    return path


def hub_config(source: HubSource, *, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The repo's `config.json` (empty when it has none: a repo with only `model.safetensors` works too)."""
    try:
        return read_folder_config(hub.hub_download(source.file(CONFIG_FILE), cache_dir=cache_dir).parent)
    except WeightsUnavailableError:
        return {}
