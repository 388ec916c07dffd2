"""Read-only view of the catalogue: the models, their weights and metadata. Imports neither torch nor timm.

The catalogue (`ssld_zoo/catalogue.json`) is the single source of truth for every model and weight. More catalogue
files can be layered on top (a private mirror, a team's own students) with `add_catalogue()` or the
`SSLD_ZOO_CATALOGUE` environment variable (paths separated by `os.pathsep`).
"""
from __future__ import annotations

import copy
import difflib
import fnmatch
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from ssld_zoo.paths import find_data_file
from ssld_zoo.errors import ArgumentTypeError, CatalogueError, UnknownModelError
from ssld_zoo.reading import read_json, shorten
from ssld_zoo.catalogue.shipped import locate

BUILTIN_CATALOGUE = Path(__file__).with_name("catalogue.json")
SCHEMA_VERSION = 1
WEIGHT_STATUSES = ("published", "unpublished")
ORIGIN_FORMATS = ("pdparams", "torch")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
RESIZE_BACKENDS = ("cv2", "pil")  # the libraries of PaddleClas's ResizeImage
_NAME = re.compile(r"^[a-z0-9_]+$")
_TAG = re.compile(r"^[a-z0-9_]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class HubFile:
    """One file on the Hugging Face Hub, pinned by commit and content hash."""

    repo_id: str
    filename: str
    revision: str | None
    sha256: str | None
    size: int | None


@dataclass(frozen=True)
class WeightEntry:
    """One set of weights (`name.tag`) with where it lives and how it was made."""

    model: str
    tag: str
    status: str
    hub: HubFile
    file: Path | None
    data_file: str | None
    origin_url: str | None
    origin_sha256: str | None
    preprocessing: dict[str, Any]
    num_classes: int
    data: dict[str, Any]

    @property
    def full_name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def shipped(self) -> bool:
        """True when the weights are a file shipped in the checkout (`file`) that exists."""
        return self.file is not None and self.file.is_file()

    @property
    def on_hub(self) -> bool:
        """True when the weights are published on the Hub at a pinned revision and hash."""
        return self.status == "published" and self.hub.revision is not None and self.hub.sha256 is not None

    @property
    def verified_mirror(self) -> HubFile | None:
        """The first Hub mirror that `ssld-zoo release` found equal to this project's conversion, pinned by commit
        and sha256 (None when there is none: unchecked and differing mirrors are never loaded)."""
        for mirror in self.data.get("mirrors") or []:
            if mirror["verdict"] == "equal" and mirror["revision"] and mirror["sha256"]:
                return HubFile(mirror["repo_id"], mirror["filename"], mirror["revision"], mirror["sha256"],
                               mirror["size"])
        return None

    @property
    def available(self) -> bool:
        """True when the weights can be loaded: a pinned Hub file, a verified mirror, a shipped local file that
        exists, or a `data_file` present in the data folder (`$SSLD_ZOO_DATA`)."""
        return self.shipped or self.on_hub or self.verified_mirror is not None or (
            self.data_file is not None and isinstance(find_data_file(self.data_file), Path))


@dataclass(frozen=True)
class ModelEntry:
    """One model: its architecture and its weights."""

    name: str
    architecture: str
    model_args: dict[str, Any]
    num_classes: int
    default_weight: str
    weights: dict[str, WeightEntry]
    data: dict[str, Any]

    @property
    def is_stock_architecture(self) -> bool:
        """True when `architecture` is a timm model rather than one of ssld_zoo's own."""
        return self.architecture != self.name

    def weight(self, tag: str | None = None) -> WeightEntry:
        tag = tag or self.default_weight
        if tag not in self.weights:
            raise UnknownModelError(
                f"Model '{self.name}' has no weights tagged '{tag}'. Known tags: {', '.join(sorted(self.weights))}.",
                key=f"{self.name}.{tag}")
        return self.weights[tag]


_extra_catalogues: list[Path] = []


def add_catalogue(path: str | os.PathLike) -> None:
    """Layer another catalogue JSON file on top of the built-in one (its entries win on name clashes)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"add_catalogue() takes the path of a catalogue JSON file, not {_typed(path)}.")
    path = Path(path).resolve()
    _load_file(path)  # fail early on a bad file
    if path not in _extra_catalogues:
        _extra_catalogues.append(path)
    _entries_for.cache_clear()


def refresh() -> None:
    """Read the catalogue files again (after one of them changed)."""
    _entries_for.cache_clear()


def catalogue_paths() -> list[Path]:
    """The catalogue files in force, lowest priority first."""
    env = [Path(p).resolve() for p in os.environ.get("SSLD_ZOO_CATALOGUE", "").split(os.pathsep) if p]
    return [BUILTIN_CATALOGUE, *env, *_extra_catalogues]


def _load_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CatalogueError(f"Catalogue file {path} does not exist (check SSLD_ZOO_CATALOGUE).", path=str(path))
    doc = read_json(path, what="catalogue file", error=CatalogueError)
    if (not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION
            or not isinstance(doc.get("models"), dict)):
        raise CatalogueError(f"Catalogue file {path} must be a JSON object with schema_version {SCHEMA_VERSION} "
                             "and a 'models' object.")
    return doc


@lru_cache(maxsize=1)
def _entries_for(paths: tuple[Path, ...]) -> dict[str, ModelEntry]:
    entries: dict[str, ModelEntry] = {}
    for path in paths:
        for name, data in _load_file(path)["models"].items():
            validate_model(name, data)
            entries[name] = _parse_model(name, data, path.parent)
    return entries


def _entries() -> dict[str, ModelEntry]:
    return _entries_for(tuple(catalogue_paths()))


def _parse_model(name: str, data: dict[str, Any], base: Path) -> ModelEntry:
    weights = {}
    for tag, w in data["weights"].items():
        hub = HubFile(**w["hub"])
        weights[tag] = WeightEntry(
            model=name, tag=tag, status=w["status"], hub=hub,
            file=locate(base, w["file"]) if w.get("file") else None, data_file=w.get("data_file"),
            origin_url=w["origin"]["url"] if w.get("origin") else None,
            origin_sha256=w["origin"].get("sha256") if w.get("origin") else None,
            preprocessing=w["preprocessing"], num_classes=data["num_classes"], data=w)
    return ModelEntry(name=name, architecture=data["architecture"], model_args=data.get("model_args", {}),
                      num_classes=data["num_classes"], default_weight=data["default_weight"], weights=weights,
                      data=data)


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise CatalogueError(f"Catalogue entry {where}: {what}.")


def _check_fields(obj: Any, where: str, fields: dict[str, type | tuple[type, ...]]) -> None:
    _require(isinstance(obj, dict), where, "must be an object")
    for key, types in fields.items():
        _require(key in obj, where, f"missing field '{key}'")
        _require(isinstance(obj[key], types), where, f"field '{key}' has type {type(obj[key]).__name__}")


def validate_model(name: str, data: dict[str, Any]) -> None:
    """Check one catalogue entry against the schema; raise `CatalogueError` naming the first problem."""
    _require(bool(_NAME.match(name)), name, "names use lower-case letters, digits and '_'")
    _check_fields(data, name, {"architecture": str, "model_args": dict, "paddle_name": (str, type(None)),
                               "family": str, "num_classes": int, "num_params": (int, type(None)),
                               "gmacs": (float, int, type(None)), "default_weight": str, "weights": dict})
    _require(data["default_weight"] in data["weights"], name, f"default_weight '{data['default_weight']}' is not a tag")
    for tag, w in data["weights"].items():
        where = f"{name}.{tag}"
        _require(bool(_TAG.match(tag)), where, "tags use lower-case letters, digits and '_'")
        _check_fields(w, where, {"status": str, "hub": dict, "file": (str, type(None)), "origin": (dict, type(None)),
                                 "preprocessing": dict, "metrics": dict, "teacher": (str, type(None)),
                                 "training_data": str, "recipe": (str, type(None)), "license": str,
                                 "notes": (str, type(None))})
        _require(w["status"] in WEIGHT_STATUSES, where, f"status must be one of {WEIGHT_STATUSES}")
        hub = w["hub"]
        _check_fields(hub, where + ".hub", {"repo_id": str, "filename": str, "revision": (str, type(None)),
                                            "sha256": (str, type(None)), "size": (int, type(None))})
        unknown = sorted(set(hub) - set(HubFile.__dataclass_fields__))
        _require(not unknown, where, f"hub has an unknown field {shorten(unknown[:1])} (known: "
                                     f"{', '.join(HubFile.__dataclass_fields__)})")
        _require(bool(_REPO_ID.match(hub["repo_id"])), where, f"hub.repo_id '{hub['repo_id']}' is not 'org/name'")
        _require(hub["filename"].endswith(".safetensors"), where, "Hub weights must be a .safetensors file")
        if hub["sha256"] is not None:
            _require(bool(_SHA256.match(hub["sha256"])), where, "hub.sha256 must be 64 lower-case hex digits")
        if hub["revision"] is not None:
            _require(bool(_COMMIT.match(hub["revision"])), where, "hub.revision must be a 40-hex commit id (pinned)")
        if w["status"] == "published":
            _require(hub["revision"] is not None and hub["sha256"] is not None and hub["size"] is not None, where,
                     "published weights need hub.revision, hub.sha256 and hub.size")
        _check_mirrors(w.get("mirrors", []), where)
        if w["file"] is not None:
            _require(w["file"].endswith(".safetensors"), where, "'file' must be a .safetensors file")
            _require(hub["sha256"] is not None, where, "a local 'file' needs hub.sha256 to be verified")
        for key in ("data_file", "summary"):  # optional
            _require(isinstance(w.get(key), (str, type(None))), where, f"field '{key}' must be a string or null")
        origin = w["origin"]
        if origin is not None:
            _check_fields(origin, where + ".origin", {"url": str, "format": str, "sha256": (str, type(None))})
            _require(origin["format"] in ORIGIN_FORMATS, where, f"origin.format must be one of {ORIGIN_FORMATS}")
            if origin["sha256"] is not None:
                _require(bool(_SHA256.match(origin["sha256"])), where, "origin.sha256 must be 64 lower-case hex digits")
            _require(isinstance(origin.get("size"), (int, type(None))), where, "origin.size must be an integer or null")
        if w.get("data_file") is not None:
            path = PurePosixPath(w["data_file"])
            _require(path.parts != () and not path.is_absolute() and ".." not in path.parts
                     and "\\" not in w["data_file"], where,
                     "data_file is a relative path inside the data folder, with '/' and no '..'")
            _require(origin is not None and origin["format"] == "torch" and origin["sha256"] is not None, where,
                     "a data_file needs origin.format 'torch' and origin.sha256 to be verified")
        elif origin is not None:
            _require(origin["format"] != "torch", where, "origin.format 'torch' is read from a data_file, which is "
                     "missing")
        _require(isinstance(w.get("gmacs"), (float, int, type(None))), where, "field 'gmacs' must be a number or null")
        _check_preprocessing(w["preprocessing"], where)
        metrics = w["metrics"]
        _check_fields(metrics, where + ".metrics", {"paddle_reported": (dict, type(None)),
                                                    "measured": (dict, type(None))})
        for kind, m in metrics.items():
            if m is not None:
                _check_fields(m, f"{where}.metrics.{kind}", {"dataset": str, "top1": (float, int),
                                                              "top5": (float, int, type(None)), "input_size": int,
                                                              "crop_pct": (float, int), "interpolation": str})


MIRROR_VERDICTS = (None, "equal", "differs")


def _check_mirrors(mirrors: Any, where: str) -> None:
    """Hub copies of a weight made by others (timm's own conversions), with the verdict of `ssld-zoo release`'s
    tensor-by-tensor comparison; only an `equal` one, pinned by commit and sha256, is ever loaded."""
    _require(isinstance(mirrors, list), where, "mirrors must be a list")
    for i, mirror in enumerate(mirrors):
        at = f"{where}.mirrors[{i}]"
        _check_fields(mirror, at, {"repo_id": str, "filename": str, "revision": (str, type(None)),
                                   "sha256": (str, type(None)), "size": (int, type(None)),
                                   "verdict": (str, type(None)), "detail": (str, type(None)),
                                   "checked": (str, type(None))})
        _require(bool(_REPO_ID.match(mirror["repo_id"])) and mirror["filename"].endswith(".safetensors"), at,
                 "a mirror is an 'org/name' repo with a .safetensors file")
        _require(mirror["verdict"] in MIRROR_VERDICTS, at, f"verdict must be one of {MIRROR_VERDICTS}")
        _require(mirror["revision"] is None or bool(_COMMIT.match(mirror["revision"])), at,
                 "revision must be a 40-hex commit id")
        _require(mirror["sha256"] is None or bool(_SHA256.match(mirror["sha256"])), at,
                 "sha256 must be 64 lower-case hex digits")
        _require(mirror["verdict"] != "equal" or (mirror["revision"] and mirror["sha256"]), at,
                 "an 'equal' mirror is pinned by revision and sha256")


def _check_preprocessing(pre: Any, where: str) -> None:
    """The eval preprocessing of one weight and, when given, the `source` it was read from (a PaddleClas config or
    doc, or a recipe): its resize/crop sizes must give the same input size, crop_pct and interpolation."""
    _check_fields(pre, where + ".preprocessing", {"input_size": list, "crop_pct": (float, int),
                                                  "interpolation": str, "mean": list, "std": list})
    _require(len(pre["input_size"]) == 3 and len(pre["mean"]) == pre["input_size"][0] == len(pre["std"]), where,
             "preprocessing input_size is [C, H, W] and mean/std have C values")
    _require(0 < pre["crop_pct"] <= 1 and pre["interpolation"] in INTERPOLATIONS, where,
             f"crop_pct is in (0, 1] and interpolation one of {'/'.join(INTERPOLATIONS)}")
    if "source" not in pre:
        return
    source = pre["source"]
    _check_fields(source, where + ".preprocessing.source", {"document": str, "ref": str, "key": str,
                                                            "resize_short": int, "crop_size": int,
                                                            "interpolation": str, "backend": str})
    _require(source["backend"] in RESIZE_BACKENDS, where, f"preprocessing.source.backend must be one of "
             f"{RESIZE_BACKENDS}")
    _require(source["crop_size"] == pre["input_size"][1] == pre["input_size"][2], where,
             f"preprocessing.source.crop_size {source['crop_size']} is not the input size {pre['input_size'][1:]}")
    _require(source["interpolation"] == pre["interpolation"], where,
             f"preprocessing.interpolation '{pre['interpolation']}' is not the source's '{source['interpolation']}'")
    _require(scale_size(source["crop_size"], pre["crop_pct"]) == source["resize_short"], where,
             f"crop_pct {pre['crop_pct']} resizes the short side to "
             f"{scale_size(source['crop_size'], pre['crop_pct'])} px, but the source resizes it to "
             f"{source['resize_short']} px (crop {source['crop_size']})")


def scale_size(crop_size: int, crop_pct: float) -> int:
    """The short side that timm's eval transform resizes to before its centre crop (`floor(crop_size / crop_pct)`,
    `timm.data.transforms_factory.transforms_imagenet_eval`)."""
    return math.floor(crop_size / crop_pct)


def _typed(value: Any) -> str:
    """`value` as an error message shows a wrong argument: its type and a short repr."""
    return f"{type(value).__name__} {shorten(value, 40)}"


def _get(name: str) -> tuple[ModelEntry, str | None]:
    if not isinstance(name, str):
        raise ArgumentTypeError(f"A model name is a string such as 'resnet50d_ssld', not {_typed(name)}.")
    base, _, tag = name.partition(".")
    entries = _entries()
    if base not in entries:
        stem = base.removesuffix("_ssld")
        same_stem = sorted(n for n in entries if n.startswith(stem))
        close = list(dict.fromkeys(same_stem + difflib.get_close_matches(base, list(entries), n=3, cutoff=0.5)))[:3]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"Unknown model '{base}'.{hint} `ssld-zoo list` shows every model.", key=base)
    return entries[base], tag or None


def get_model_entry(name: str) -> ModelEntry:
    """The catalogue entry for `name` (a `name.tag` form is accepted and the tag checked)."""
    entry, tag = _get(name)
    if tag:
        entry.weight(tag)
    return entry


def get_weight_entry(name: str) -> WeightEntry:
    """The weights for `name` or `name.tag` (the model's default weights when no tag is given)."""
    entry, tag = _get(name)
    return entry.weight(tag)


def iter_models() -> Iterator[ModelEntry]:
    return iter(_entries().values())


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Model names matching the fnmatch `pattern`. `pretrained=True` lists, as timm does, every `name.tag` whose
    weights can be loaded now (of a model matching `pattern`)."""
    if not isinstance(pattern, str):
        raise ArgumentTypeError(f"list_models() takes an fnmatch pattern string such as '*resnet*', not "
                                f"{_typed(pattern)}.")
    matching = [e for e in iter_models() if fnmatch.fnmatch(e.name, pattern)]
    if not pretrained:
        return sorted(e.name for e in matching)
    return sorted(w.full_name for e in matching for w in e.weights.values() if w.available)


def model_info(name: str) -> dict[str, Any]:
    """The catalogue entry for `name` as a JSON-serialisable dict (a copy; `name` and `available` added)."""
    entry = get_model_entry(name)
    info = copy.deepcopy(entry.data)
    info["name"] = entry.name
    for tag, w in info["weights"].items():
        w["available"] = entry.weights[tag].available
    return info
