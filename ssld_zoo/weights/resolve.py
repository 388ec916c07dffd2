"""One way from a weights source to a verified local file: `resolve(source) -> Resolved`. No torch at import.

What a source names (`sources.parse_source` decides), and where its file comes from:

1. a catalogue weight (a `WeightEntry`, or `name` / `name.tag`): the file shipped in the checkout, else the pinned Hub
   file, else a Hub mirror that `ssld-zoo release` verified equal (pinned by commit and sha256), else the data
   folder's PyTorch checkpoint (`data_file`, checked against the catalogue's `origin.sha256`, converted to
   safetensors once and kept in the conversion cache under that sha256), else the file the producer registered for
   its origin format makes (`ssld_zoo.convert` registers the first-use conversion of the PaddleClas `.pdparams`);
2. `hf-hub:org/name[@revision]`: the repo's `model.safetensors`, checked against the sha256 the Hub published, with
   the preprocessing, classes and architecture of its `config.json` (a repo without one works too);
3. a Hub-layout folder: its `model.safetensors`, checked against the sha256 pinned in its `config.json`;
4. a `.safetensors` file: nothing pins it, so only its header is checked;
5. with `checkpoints=True` (training), a PyTorch checkpoint (`.pth`/`.pt`/`.th`/`.bin`): read with
   `torch.load(weights_only=True)` and converted once to a safetensors file kept in the conversion cache under its
   sha256.

Each file is hashed once, before its path is returned, and nothing is built here: the model is built from the
returned path by `ssld_zoo.models.factory.load_model`, which every command uses. No hash is remembered between calls
(a file replaced in place within the file system's timestamp granularity would pass a (device, inode, size, mtime)
memo), so a warm `create()` reads each file it loads once to hash it, and no file it does not load.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from ssld_zoo.catalogue.registry import WeightEntry, get_model_entry, get_weight_entry
from ssld_zoo.errors import (InputError, IntegrityError, InvalidWeightsError, UnknownModelError,
                             WeightsUnavailableError)
from ssld_zoo.files import atomic_path, file_sha256, save_safetensors, write_text_atomic
from ssld_zoo.paths import SHARED_DATA, Missing, find_data_file
from ssld_zoo.reading import read_json
from ssld_zoo.weights import hub
from ssld_zoo.weights.hub import VerifiedFile
from ssld_zoo.weights.sources import (CONFIG_FILE, WEIGHTS_FILE, CatalogueSource, FolderSource, HubSource,
                                      parse_source, pretrained_cfg_for, read_folder_config)
from ssld_zoo.weights.validation import check_config, safetensors_problem

TORCH_SUFFIXES = (".pth", ".pt", ".th", ".bin")
_WRAPPERS = ("state_dict", "model", "student")  # where training scripts keep the state dict in a checkpoint


@dataclass(frozen=True)
class Resolved:
    """A verified local weight file and what a model needs to load it.

    `sha256` is the hash the file was checked against (catalogue, Hub, `config.json`, first-use record), None for a
    file nothing pins. `pretrained_cfg` is the timm cfg that belongs to the file (preprocessing, `num_classes`):
    the catalogue's, else its `config.json`'s, else empty. `architecture` and `model_args` say what it was made for,
    when known; `weight` is the catalogue weight it is (for a folder: the one its `config.json` names); `config` is
    the `config.json` that came with it ({} for none); `name` is what reports call the weights: the catalogue weight,
    the Hub id, the model a folder's `config.json` names, or the path."""

    path: Path
    sha256: str | None
    source: str
    name: str
    pretrained_cfg: dict[str, Any] = field(default_factory=dict)
    architecture: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    weight: WeightEntry | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        """The name to build for these weights on their own: the catalogue weight (`name.tag`), else the
        architecture."""
        return self.weight.full_name if self.weight is not None else self.architecture


Producer = Callable[[WeightEntry], VerifiedFile]
_PRODUCERS: dict[str, Producer] = {}  # origin format -> maker of the verified file (in the layers above)


def register_producer(origin_format: str, producer: Producer) -> None:
    """Let `resolve` make a catalogue weight's file from its original file of `origin_format` when nothing else has
    it: `ssld_zoo.convert` registers its first-use conversion for "pdparams" (the conversion layer sits above this
    one, so it plugs itself in rather than being imported). The producer returns the verified file."""
    _PRODUCERS[origin_format] = producer


def names_its_model(spec: str | os.PathLike) -> bool:
    """Whether `spec` is weights that say which model they are for (`hf-hub:org/name`, a Hub-layout folder), so it
    can stand where a model name is expected."""
    return isinstance(parse_source(spec), (HubSource, FolderSource))


def conversion_cache_root() -> Path:
    """The conversion cache: where files made on this machine are kept (first-use conversions and their PaddleClas
    files, converted PyTorch checkpoints, fetched shards); `$SSLD_ZOO_CACHE`, default `$XDG_CACHE_HOME/ssld_zoo` or
    `~/.cache/ssld_zoo`. Not the Hub cache (huggingface_hub's) nor a soft-label cache (`ssld-zoo cache`)."""
    if os.environ.get("SSLD_ZOO_CACHE"):
        return Path(os.environ["SSLD_ZOO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "ssld_zoo"


def resolve(source: str | os.PathLike | WeightEntry, *, catalogue: bool = True, checkpoints: bool = False,
            cache_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None) -> Resolved:
    """The verified local file that `source` names (see the module docstring), hashed before it is returned.

    `catalogue=False` reads a string that is not a folder or `hf-hub:` id as a file path, never a catalogue name
    (what `pretrained=` means); `checkpoints=True` accepts PyTorch checkpoints. `cache_dir` is the Hub cache
    (default `HF_HUB_CACHE`), `data_root` the data folder for catalogue weights kept there (default
    `$SSLD_ZOO_DATA`)."""
    if isinstance(source, WeightEntry):
        return _catalogue(source, cache_dir, data_root)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidWeightsError(f"pretrained must be False, True, a path or 'hf-hub:org/name', not {source!r}.")
    spec = os.fspath(source)
    parsed = parse_source(spec, catalogue=catalogue)
    if isinstance(parsed, CatalogueSource):
        return _catalogue(get_weight_entry(parsed.name), cache_dir, data_root)
    if isinstance(parsed, HubSource):
        return _hub(parsed, spec, cache_dir)
    if isinstance(parsed, FolderSource):
        return _folder(parsed.path)
    if catalogue and not parsed.path.exists():
        raise InvalidWeightsError(f"'{spec}' does not exist: give a catalogue name (`ssld-zoo list`), a Hub-layout "
                                  "folder, 'hf-hub:org/name' or a weight file.", path=spec)
    if checkpoints and parsed.path.suffix in TORCH_SUFFIXES:
        return Resolved(_converted_checkpoint(parsed.path, None).path, None, spec, spec)
    if checkpoints and parsed.path.suffix != ".safetensors":
        raise InvalidWeightsError(f"pretrained='{spec}' must be true/false, 'hf-hub:org/name', a .safetensors file, "
                                  f"a Hub-layout folder or a torch checkpoint ({', '.join(TORCH_SUFFIXES)}).",
                                  path=spec)
    _check_safetensors_file(parsed.path, spec)
    return Resolved(parsed.path, None, spec, spec)


def _check_safetensors_file(path: Path, given: str) -> None:
    """Refuse, in one line, a weight file that is not there or is not safetensors (its header checked in full)."""
    if path.suffix != ".safetensors":
        raise InvalidWeightsError(
            f"pretrained='{given}' is not a .safetensors file. ssld_zoo loads only safetensors (no pickles); "
            "convert PaddleClas .pdparams with `ssld-zoo convert`, or save a state dict with "
            "safetensors.torch.save_file.", path=given)
    if not path.is_file():
        raise InvalidWeightsError(f"pretrained='{given}': no such file.", path=given)
    problem = safetensors_problem(path)
    if problem:
        raise InvalidWeightsError(f"pretrained='{given}' is not a readable safetensors file ({problem}); it is "
                                  "truncated or another format. Download or convert it again.", path=given)


# -- catalogue weights ------------------------------------------------------------------------------------------------
def _catalogue(weight: WeightEntry, cache_dir: str | os.PathLike | None,
               data_root: str | os.PathLike | None) -> Resolved:
    entry = get_model_entry(weight.model)
    found = _catalogue_file(weight, cache_dir, data_root)
    return Resolved(found.path, found.sha256, weight.full_name, weight.full_name, pretrained_cfg_for(weight),
                    entry.architecture, dict(entry.model_args), weight)


def _catalogue_file(weight: WeightEntry, cache_dir: str | os.PathLike | None,
                    data_root: str | os.PathLike | None) -> VerifiedFile:
    """The first of the catalogue's places that has the weight's file, verified."""
    if weight.file is not None and weight.file.is_file():
        problem = hub.check_file(weight.file, weight.hub.sha256, weight.hub.size)
        if problem is not None:
            raise IntegrityError(f"The shipped weight file {weight.file} for '{weight.full_name}' is corrupt "
                                 f"({problem}). Restore it from version control (git checkout -- {weight.file}).",
                                 path=str(weight.file), weight=weight.full_name)
        return VerifiedFile(weight.file, weight.hub.sha256)
    if weight.on_hub:
        return hub.fetch_verified(weight.hub, cache_dir=cache_dir, model=weight.model)
    mirror = weight.verified_mirror
    if mirror is not None:
        return hub.fetch_verified(mirror, cache_dir=cache_dir, model=weight.model)
    if weight.data_file is not None:
        return _data_file(weight, weight.data_file, data_root)
    origin_format = weight.data["origin"]["format"] if weight.origin_url else None
    if origin_format in _PRODUCERS:
        return _PRODUCERS[origin_format](weight)
    raise WeightsUnavailableError(
        f"Weights '{weight.full_name}' are not published yet (status: {weight.status}) and have no PaddleClas file "
        "to convert. Use pretrained=False, or pass pretrained='path/to/model.safetensors' or a Hub layout folder. "
        "`ssld-zoo list --pretrained` shows the weights that can be loaded now.", weight=weight.full_name)


def _data_file(weight: WeightEntry, data_file: str, data_root: str | os.PathLike | None) -> VerifiedFile:
    """The safetensors conversion of `data_file` (a PyTorch checkpoint in the data folder): converted once, after
    the checkpoint matched the catalogue's `origin.sha256` and `origin.size`, and cached under that sha256."""
    origin = weight.data["origin"]
    pinned = origin.get("sha256")
    if pinned:
        cached = _cached_checkpoint(pinned)
        if cached is not None:
            return cached
    found = find_data_file(data_file, data_root)
    if isinstance(found, Missing):
        raise WeightsUnavailableError(
            f"Weights '{weight.full_name}' are read from the data folder, but {found.reason}. Download "
            f"{PurePosixPath(data_file).name} from {weight.origin_url} (or copy it from {SHARED_DATA}, {data_file}) "
            f"into {found.put_in}.", weight=weight.full_name)
    problem = hub.check_file(found, pinned, origin.get("size"))
    if problem is not None:
        raise IntegrityError(f"The data file {found} for '{weight.full_name}' does not match the catalogue "
                             f"({problem}); it is damaged or another file. Download it again from {weight.origin_url}.",
                             path=str(found), weight=weight.full_name)
    return _converted_checkpoint(found, pinned)


# -- PyTorch checkpoints, converted once ------------------------------------------------------------------------------
def _checkpoint_paths(sha256: str) -> tuple[Path, Path]:
    """The converted file of the checkpoint whose sha256 is `sha256`, and its record (the converted file's hash)."""
    folder = conversion_cache_root() / "checkpoints"
    return folder / f"{sha256}.safetensors", folder / f"{sha256}.json"


def _cached_checkpoint(sha256: str) -> VerifiedFile | None:
    """A checkpoint's conversion in the conversion cache, verified against its record (None when there is none or
    it differs)."""
    converted, record_path = _checkpoint_paths(sha256)
    if not record_path.exists():
        return None
    try:
        record = read_json(record_path, what="checkpoint conversion record")["converted"]
        expected, size = str(record["sha256"]), record.get("size")
    except (InputError, KeyError, TypeError, AttributeError):
        return None  # damaged: converted again, and the record rewritten
    if not converted.is_file() or hub.check_file(converted, expected, size if isinstance(size, int) else None):
        return None
    return VerifiedFile(converted, expected)


def _converted_checkpoint(path: Path, sha256: str | None) -> VerifiedFile:
    """`path` (a PyTorch checkpoint whose sha256 is `sha256`, hashed here when None) as a safetensors file in the
    conversion cache:
    its state dict (bare, or under 'state_dict' / 'model' / 'student'; DataParallel's `module.` prefix removed), read
    with `weights_only=True` so the file cannot run code, saved byte-stably (the same checkpoint always gives the
    same file, so processes converting at once agree)."""
    if not path.is_file():
        raise InvalidWeightsError(f"Checkpoint {path} does not exist.", path=str(path))
    sha256 = sha256 or file_sha256(path)
    cached = _cached_checkpoint(sha256)
    if cached is not None:
        return cached
    state = _torch_state_dict(path)
    converted, record = _checkpoint_paths(sha256)
    with atomic_path(converted) as tmp:
        save_safetensors({k: v.contiguous() for k, v in state.items()}, tmp,
                         {"format": "pt", "ssld_zoo_origin_sha256": sha256})
        made = VerifiedFile(converted, file_sha256(tmp))
        size = tmp.stat().st_size
    write_text_atomic(record, json.dumps({"origin": {"path": str(path), "sha256": sha256},
                                          "converted": {"sha256": made.sha256, "size": size}}, indent=2) + "\n")
    return made


def _torch_state_dict(path: Path) -> dict[str, Any]:
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an UnpicklingError, or anything a damaged file makes torch.load raise
        raise InvalidWeightsError(f"Cannot load {path} with torch.load(weights_only=True): "
                                  f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. Only tensors and plain "
                                  "containers are accepted; save a state dict (or convert it to .safetensors).",
                                  path=str(path)) from e
    for key in _WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise InvalidWeightsError(f"{path} holds no state dict (a mapping of names to tensors, possibly under "
                                  f"{' / '.join(repr(w) for w in _WRAPPERS)}).", path=str(path))
    return {k.removeprefix("module."): v for k, v in obj.items()}


# -- Hub repos and Hub-layout folders ---------------------------------------------------------------------------------
def _described(path: Path, sha256: str | None, source: str, name: str | None, config: dict[str, Any]) -> Resolved:
    """A file with what its timm `config.json` (checked by `validation.check_config`) says: preprocessing and
    classes, architecture, model args (checked against the architecture's own by the model layer, before they reach
    timm) and the catalogue weight its `ssld_zoo` block names."""
    cfg = dict(config.get("pretrained_cfg", {}))
    if "num_classes" in config:
        cfg["num_classes"] = config["num_classes"]
    weight = _named_weight(config.get("ssld_zoo"))
    name = name or (weight.full_name if weight else config.get("ssld_zoo", {}).get("model")
                    or config.get("architecture") or source)
    return Resolved(path, sha256, source, name, cfg, config.get("architecture"),
                    dict(config.get("model_args", {})), weight, config)


def _named_weight(block: Any) -> WeightEntry | None:
    """The catalogue weight (`name.tag`) that a `config.json`'s `ssld_zoo` block names, or None (a model of your own,
    e.g. a training export under its recipe's name)."""
    if not isinstance(block, dict) or not block.get("model"):
        return None
    try:
        return get_weight_entry(".".join(str(block[k]) for k in ("model", "tag") if block.get(k)))
    except UnknownModelError:
        return None


def _folder(folder: Path) -> Resolved:
    """`folder/model.safetensors`, checked against the sha256 and size pinned in the folder's `config.json`."""
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise InvalidWeightsError(f"{folder} is not in Hub layout: it has no {WEIGHTS_FILE} (a folder as `ssld-zoo "
                                  "download` / `convert` / training write it holds it beside its config.json).",
                                  path=os.fspath(folder))
    where = str(folder / CONFIG_FILE)
    config = check_config(read_folder_config(folder), where=where)
    pinned = config.get("ssld_zoo", {})
    problem = hub.check_file(path, pinned.get("sha256"), pinned.get("size"))
    if problem is not None:
        raise IntegrityError(f"{path} does not match the sha256 recorded in its config.json ({problem}); the copy is "
                             "damaged. Download or convert it again.", path=str(path))
    _check_safetensors_file(path, os.fspath(path))
    return _described(path, pinned.get("sha256"), os.fspath(folder), None, config)


def _hub(source: HubSource, spec: str, cache_dir: str | os.PathLike | None) -> Resolved:
    """The repo's `model.safetensors` (checked against the sha256 the Hub published) and its `config.json`."""
    try:
        raw = read_folder_config(hub.hub_download(source.file(CONFIG_FILE), cache_dir=cache_dir).parent)
    except WeightsUnavailableError:
        raw = {}  # a repo with only model.safetensors works too
    config = check_config(raw, where=f"{CONFIG_FILE} of {source.repo_id}")
    found = hub.fetch_verified(source.file(), cache_dir=cache_dir)
    problem = safetensors_problem(found.path)
    if problem:  # its sha256 matches what the Hub published, so downloading it again would not help
        raise InvalidWeightsError(f"{WEIGHTS_FILE} of '{spec}' is not a readable safetensors file ({problem}); the "
                                  "repo holds another format or a damaged upload. Ask its owner to re-upload it, or "
                                  "pass another weights source.", repo_id=source.repo_id, filename=WEIGHTS_FILE,
                                  revision=source.revision, path=str(found.path))
    return _described(found.path, found.sha256, spec, spec, config)
