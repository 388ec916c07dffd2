"""Checks of what comes with weights from outside the catalogue, before anything is built or loaded from it: the
header of a safetensors file, a timm `config.json`, and Hub repo ids and revisions. Imports neither torch nor timm.

Every check raises `InvalidWeightsError` with one line that names the file (or the id) and what is wrong:

- `check_safetensors(path)` reads only the header (bounded by `MAX_HEADER_BYTES` and by the file's size) and
  returns it once every tensor has a known dtype, a shape whose byte length equals its byte range, and the byte
  ranges tile the data exactly: in order from 0, no gap, no overlap, ending at the end of the file. Metadata is
  strings only. `safetensors_problem(path)` says the same as a reason (None for a good file).
- `check_config(config, where=...)` checks a whole `config.json` against its schema (`CONFIG_SCHEMA`): known keys
  only, each of its type and range. Of `pretrained_cfg` it keeps preprocessing and provenance; the keys that name
  a weight source (`file`, `url`, `hf_hub_id`, ...) and the architecture's own facts (`first_conv`, `classifier`)
  are type-checked and dropped, so the file cannot say where weights come from or which of them timm discards;
  `custom_load` and `label_offset`, which change how timm reads the weights, are refused unless neutral.
  `model_args` may hold JSON scalars and short lists of them, and never a key that steers loading
  (`steers_loading`); the architecture's own allow-list is `ssld_zoo.models.checks.check_model_args`.
- `check_repo_id(repo_id)` and `check_revision(revision)` decide what may reach huggingface_hub: `org/name`, and a
  40-hex commit, a branch or tag name (one path component of ASCII letters, digits and `._-+`, within git's
  check-ref-format rules), or a Hub pull-request ref `refs/pr/N`.
"""
from __future__ import annotations

import math
import operator
import os
import re
import struct
from itertools import accumulate
from typing import Any, Callable

from ssld_zoo.catalogue.registry import INTERPOLATIONS
from ssld_zoo.errors import InvalidWeightsError
from ssld_zoo.reading import open_regular, parse_json, shorten

# -- safetensors ------------------------------------------------------------------------------------------------------
DTYPE_BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
              "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
              "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64}  # safetensors 0.8's set
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit
MAX_RANK = 32
_MAX_ELEMENTS = 1 << 58  # elements of one tensor, at any step of the product: its bits must fit in 64 bits
_TENSOR_KEYS = ("dtype", "shape", "data_offsets")
_METADATA = "__metadata__"


class _NotSafetensors(Exception):
    """Why a file is not a valid safetensors file (internal: reported with the file's name)."""


def check_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """The header of the safetensors file `path` (tensor name -> dtype, shape, data_offsets; `__metadata__`), read
    without loading any tensor and checked in full; anything else is one `InvalidWeightsError` naming the file."""
    name = os.fspath(path)
    try:
        return _read_header(name)
    except _NotSafetensors as e:
        raise InvalidWeightsError(f"{name} is not a valid safetensors file: {e}. It is damaged, truncated or another "
                                  "format; download, convert or save it again.", path=name) from e


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the safetensors file `path` (None when `check_safetensors` accepts it), as a reason for
    callers that word the error themselves."""
    try:
        _read_header(os.fspath(path))
    except _NotSafetensors as e:
        return str(e)
    except InvalidWeightsError as e:  # not a regular file, or it cannot be opened
        return str(e).rstrip(".")
    return None


def _read_header(name: str) -> dict[str, Any]:
    with open_regular(name, what="weights file", error=InvalidWeightsError) as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise _NotSafetensors(f"it has {size} bytes, fewer than the 8 that give the header's length")
        try:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise _NotSafetensors(f"its header claims {length:,} bytes, more than the "
                                      + (f"{size - 8:,} the file has after it" if length > size - 8
                                         else f"{MAX_HEADER_BYTES:,} allowed"))
            data = f.read(length)
        except OSError as e:
            raise _NotSafetensors(f"it cannot be read ({e.strerror or e})") from e
    if len(data) != length:
        raise _NotSafetensors("it was shortened while being read")
    try:  # strict UTF-8 without a byte-order mark, as safetensors reads it
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _NotSafetensors(f"its header is not UTF-8 (byte {e.start:,})") from e
    try:
        header = parse_json(text, where="its header", max_depth=3, max_int_digits=20, error=InvalidWeightsError)
    except InvalidWeightsError as e:
        raise _NotSafetensors(str(e).rstrip(".")) from e
    if not isinstance(header, dict):
        raise _NotSafetensors("its header is not a JSON object")
    _check_tensors(header, size - 8 - length)
    return header


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tensors(header: dict[str, Any], data_bytes: int) -> None:
    """Every tensor entry well-formed, and the byte ranges tiling `data_bytes` exactly."""
    spans = []
    for key, info in header.items():
        if key == _METADATA:
            if not (isinstance(info, dict) and all(isinstance(v, str) for v in info.values())):
                raise _NotSafetensors("its __metadata__ is not an object of strings")
            continue
        tensor = f"tensor {shorten(key, 60)}"
        if not (isinstance(info, dict) and sorted(info) == sorted(_TENSOR_KEYS)):
            raise _NotSafetensors(f"{tensor} is not an object of exactly {', '.join(_TENSOR_KEYS)}")
        dtype, shape, offsets = (info[k] for k in _TENSOR_KEYS)
        if not (isinstance(dtype, str) and dtype in DTYPE_BITS):
            raise _NotSafetensors(f"{tensor} has the unknown dtype {shorten(dtype, 30)}")
        if not (isinstance(shape, list) and len(shape) <= MAX_RANK and all(_whole(d) for d in shape)):
            raise _NotSafetensors(f"{tensor} has the shape {shorten(shape, 60)}, not a list of at most {MAX_RANK} "
                                  "whole numbers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_whole(o) for o in offsets)
                and offsets[0] <= offsets[1]):
            raise _NotSafetensors(f"{tensor} has the data_offsets {shorten(offsets, 60)}, not [begin, end] with "
                                  "0 <= begin <= end")
        begin, end = offsets
        if any(size >= _MAX_ELEMENTS for size in accumulate(shape, operator.mul)):  # as the loader multiplies
            raise _NotSafetensors(f"{tensor} has the shape {shorten(shape, 60)}, whose element count overflows "
                                  "64 bits as the loader multiplies it out")
        bits = math.prod(shape) * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise _NotSafetensors(f"{tensor} ({dtype} of shape {shorten(shape, 60)}) needs {bits / 8:,g} bytes, but "
                                  f"its data_offsets span {end - begin:,}")
        spans.append((begin, end, tensor))
    at = 0
    for begin, end, tensor in sorted(spans):
        if begin != at:
            raise _NotSafetensors(f"{tensor} starts at byte {begin:,} of the data, where the tensors before it end at "
                                  f"{at:,}: {'they overlap' if begin < at else 'there is a gap'}")
        at = end
    if at != data_bytes:
        raise _NotSafetensors(f"its tensors end at byte {at:,} of the data, but the file holds {data_bytes:,} bytes "
                              "after the header")


# -- config.json ------------------------------------------------------------------------------------------------------
MAX_CLASSES = 100_000  # ImageNet-22k has 21,841
MAX_INPUT_PX = 4096  # a side; the largest SSLD weight is evaluated at 320
MIN_CROP_PCT = 0.25  # eval resizes to input / crop_pct: a tiny fraction asks for an image of unbounded size (timm's
#                     smallest is 0.75)
MAX_CHANNELS = 16
MAX_TEXT = 10_000  # characters of a free-text value (a license, a description)
MAX_NAME = 200  # characters of a name (an architecture, a tag, a layer)
MAX_LIST = 64  # items of a model_args list
MAX_MODEL_ARGS = 64
LOADING_KEYS = frozenset({
    "checkpoint_path", "cache_dir", "data_root", "pretrained_strict", "pretrained_filter_fn", "features_only",
    "feature_cfg", "feature_cls", "feature_cls_kwargs", "out_indices", "flatten_sequential", "kwargs_filter",
    "scriptable", "exportable", "no_jit", "device", "dtype", "model_name", "source"})
_LOADING_PARTS = ("pretrained", "checkpoint", "path", "file", "url", "dir", "cache", "root", "hub")
_ARCHITECTURE = re.compile(r"[a-z0-9][a-z0-9_]{0,127}")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def steers_loading(name: str) -> bool:
    """Whether a `model_args` key can change where weights come from or how they are read, rather than describe the
    architecture: timm's loading options (`checkpoint_path`, `pretrained*`, `features_only`, `cache_dir`, ...), the
    zoo's (`data_root`), placement (`device`, `dtype`), and any name about paths, files, URLs or caches."""
    lowered = name.lower()
    return name in LOADING_KEYS or any(part in lowered for part in _LOADING_PARTS)


class _Checker:
    """Type and range checks that refuse with one line: `{where}: {key} {value} {what}; fix or re-create the folder.`"""

    def __init__(self, where: str) -> None:
        self.where = where

    def refuse(self, key: str, value: Any, what: str) -> InvalidWeightsError:
        return InvalidWeightsError(f"{self.where}: {key} {shorten(value)} {what}; fix or re-create the folder.",
                                   path=self.where, key=key)

    def unknown(self, keys: list[str], allowed: Any, of: str) -> InvalidWeightsError:
        shown = ", ".join(shorten(k, 40) for k in sorted(keys)[:5])
        return InvalidWeightsError(f"{self.where}: unknown key(s) {shown} {of}; the allowed ones are "
                                   f"{', '.join(sorted(allowed))}.", path=self.where, key=str(keys[0]))

    def object(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.refuse(key, value, "is not an object")
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_text(value: Any, limit: int = MAX_TEXT) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _is_texts(value: Any, limit: int = MAX_TEXT) -> bool:
    """A string, or a list of strings (timm writes `paper_ids` and `notes` either way)."""
    return _is_text(value, limit) or (isinstance(value, list) and len(value) <= MAX_LIST
                                      and all(_is_text(v, limit) for v in value))


def _is_label_names(value: Any) -> bool:
    """timm's `label_names`: a list of names, or an object from class index to name (when there are gaps)."""
    names = value.values() if isinstance(value, dict) else value
    return (isinstance(value, (list, dict)) and len(value) <= MAX_CLASSES
            and all(_is_text(v, MAX_NAME * 5) for v in names))


def _is_label_descriptions(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) <= MAX_CLASSES
            and all(_is_text(v, MAX_TEXT) for v in value.values()))


def _is_name(value: Any) -> bool:
    return _is_text(value, MAX_NAME) and value.strip() == value and value != ""


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


Rule = tuple[Callable[[Any], bool], str]
_TEXT: Rule = (_is_text, f"is not a string of at most {MAX_TEXT:,} characters")
_TEXTS: Rule = (_is_texts, f"is not a string or a list of at most {MAX_LIST} strings")
_NAME: Rule = (_is_name, f"is not a name of 1-{MAX_NAME} characters")
_CLASSES: Rule = (lambda v: _is_whole(v, 0, MAX_CLASSES), f"is not a whole number from 0 to {MAX_CLASSES:,}")
_FLAG: Rule = (lambda v: isinstance(v, bool), "is not true or false")
_SIZE: Rule = (lambda v: isinstance(v, tuple) and len(v) == 3 and _is_whole(v[0], 1, MAX_CHANNELS)
               and all(_is_whole(s, 1, MAX_INPUT_PX) for s in v[1:]),
               f"is not [channels, height, width] with 1-{MAX_CHANNELS} channels and 1-{MAX_INPUT_PX} px a side")
_CROP: Rule = (lambda v: _is_number(v) and MIN_CROP_PCT <= v <= 1, f"is not a number from {MIN_CROP_PCT} to 1")
_POOL: Rule = (lambda v: isinstance(v, tuple) and len(v) <= 3 and all(_is_whole(s, 1, MAX_INPUT_PX) for s in v),
               f"is not a list of whole numbers from 1 to {MAX_INPUT_PX}")
_LAYERS: Rule = (lambda v: _is_texts(v, MAX_NAME), "is not a layer name or a list of them")
_LABELS: Rule = (_is_label_names, f"is not a list of at most {MAX_CLASSES:,} names (or an object of them)")
_DESCRIPTIONS: Rule = (_is_label_descriptions, "is not an object of strings")
_PER_CHANNEL: Rule = (lambda v: True, "is checked against input_size's channels")  # in check_pretrained_cfg
_SOURCE: Rule = (lambda v: _is_text(v) or (isinstance(v, list) and len(v) == 2 and all(map(_is_text, v))),
                 "is not a string")

# pretrained_cfg: what timm's PretrainedCfg holds. Kept: preprocessing, classes and provenance. Dropped after their
# check: where weights come from, and the architecture's own facts (timm drops the weights of the layers
# `classifier` names, and adapts the one `first_conv` names): both come from the zoo, never from a file.
PRETRAINED_CFG_KEPT: dict[str, Rule] = {
    "architecture": _NAME, "tag": _NAME, "input_size": _SIZE, "test_input_size": _SIZE, "min_input_size": _SIZE,
    "fixed_input_size": _FLAG,
    "interpolation": (lambda v: v in INTERPOLATIONS,
                      f"is not one of {', '.join(INTERPOLATIONS)} (what ssld_zoo's transforms resize with)"),
    "crop_pct": _CROP, "test_crop_pct": _CROP,
    "crop_mode": (lambda v: v in ("center", "squash", "border"), "is not one of center, squash, border"),
    "mean": _PER_CHANNEL, "std": _PER_CHANNEL,
    "num_classes": _CLASSES, "label_names": _LABELS, "label_descriptions": _DESCRIPTIONS,
    "pool_size": _POOL, "test_pool_size": _POOL,
    "license": _TEXT, "description": _TEXT, "origin_url": _TEXT, "paper_name": _TEXT, "paper_ids": _TEXTS,
    "notes": _TEXTS}
PRETRAINED_CFG_DROPPED: dict[str, Rule] = {
    "url": _SOURCE, "file": _TEXT, "hf_hub_id": _TEXT, "hf_hub_filename": _TEXT, "source": _TEXT,
    "state_dict": (lambda v: False, "cannot come from a file"),
    "first_conv": _LAYERS, "classifier": _LAYERS}
PRETRAINED_CFG_NEUTRAL: dict[str, Rule] = {  # change how timm reads the weights: only their neutral value passes
    "custom_load": (lambda v: v is False, "must be false: ssld_zoo reads safetensors state dicts only"),
    "label_offset": (lambda v: v == 0 and not isinstance(v, bool),
                     "must be 0: it would make timm slice the classifier's weights")}
_TUPLE_KEYS = ("input_size", "test_input_size", "min_input_size", "mean", "std", "pool_size", "test_pool_size")

SSLD_ZOO_BLOCK: dict[str, Rule] = {  # what weights/layout.py and train/hub_folder.py pin
    "model": _NAME, "tag": _NAME, "recipe": _NAME,
    "sha256": (_is_sha256, "is not 64 lower-case hex digits"),
    "size": (lambda v: _is_whole(v, 0, 1 << 50), "is not a size in bytes"),
    "hub_repo": (lambda v: v is None or _is_text(v, MAX_NAME), "is not a Hub repo id"),
    "hub_revision": (lambda v: v is None or _is_text(v, MAX_NAME), "is not a Hub revision"),
    "origin": (lambda v: isinstance(v, dict) and set(v) <= {"url", "sha256"} and _is_text(v.get("url") or "")
               and (v.get("sha256") is None or _is_sha256(v["sha256"])),
               "is not an object of the origin's url and sha256"),
}

CONFIG_SCHEMA: dict[str, Rule] = {  # the top level: what timm's save_config_for_hf and ssld_zoo's writers write
    "architecture": (lambda v: isinstance(v, str) and bool(_ARCHITECTURE.fullmatch(v)),
                     "is not a timm architecture name (lower-case letters, digits and '_')"),
    "num_classes": _CLASSES,
    "num_features": (lambda v: _is_whole(v, 0, 1 << 20), "is not a whole number of features"),
    "global_pool": (lambda v: _is_text(v, MAX_NAME), "is not a pooling name"),
    "label_names": _LABELS, "label_descriptions": _DESCRIPTIONS,
    "pretrained_cfg": (lambda v: isinstance(v, dict), "is not an object"),
    "model_args": (lambda v: isinstance(v, dict), "is not an object"),
    "ssld_zoo": (lambda v: isinstance(v, dict), "is not an object"),
}


def check_config(config: Any, *, where: str) -> dict[str, Any]:
    """A timm `config.json` (already parsed), checked in full against `CONFIG_SCHEMA`; returns the checked copy with
    `pretrained_cfg` reduced to the keys it keeps (lists of numbers as tuples, nulls left out) and `model_args`
    checked by `check_model_args_values`. `where` names the file in the one-line `InvalidWeightsError`.

    Every reader of a `config.json` (a folder's, a Hub repo's) runs this before using any value of it."""
    check = _Checker(where)
    if not isinstance(config, dict):
        raise InvalidWeightsError(f"{where} must hold a JSON object.", path=where)
    unknown = [k for k in config if k not in CONFIG_SCHEMA]
    if unknown:
        raise check.unknown(unknown, CONFIG_SCHEMA, "at the top level")
    for key, (valid, what) in CONFIG_SCHEMA.items():
        if key in config and config[key] is not None and not valid(config[key]):
            raise check.refuse(key, config[key], what)
    out = {k: v for k, v in config.items() if v is not None}
    if "pretrained_cfg" in out:
        out["pretrained_cfg"] = check_pretrained_cfg(out["pretrained_cfg"], where=where)
    if "model_args" in out:
        out["model_args"] = check_model_args_values(out["model_args"], where=where)
    if "ssld_zoo" in out:
        out["ssld_zoo"] = _check_block(check, out["ssld_zoo"])
    return out


def check_pretrained_cfg(pretrained: Any, *, where: str) -> dict[str, Any]:
    """The `pretrained_cfg` object of a `config.json`: every key known and checked; returns the kept keys
    (`PRETRAINED_CFG_KEPT`, lists of numbers as tuples), without nulls and without the dropped ones."""
    check = _Checker(where)
    rules = {**PRETRAINED_CFG_KEPT, **PRETRAINED_CFG_DROPPED, **PRETRAINED_CFG_NEUTRAL}
    pretrained = check.object(pretrained, "pretrained_cfg")
    unknown = [k for k in pretrained if k not in rules]
    if unknown:
        raise check.unknown(unknown, rules, "in pretrained_cfg")
    cfg = {k: tuple(v) if k in _TUPLE_KEYS and isinstance(v, list) else v
           for k, v in pretrained.items() if v is not None}
    for key, value in cfg.items():
        valid, what = rules[key]
        if rules[key] is not _PER_CHANNEL and not valid(value):
            raise check.refuse(key, value, what)
    channels = cfg["input_size"][0] if "input_size" in cfg else 3
    for key in ("mean", "std"):
        values = cfg.get(key)
        if values is not None and not (isinstance(values, tuple) and len(values) == channels
                                       and all(_is_number(v) for v in values) and (key == "mean" or min(values) > 0)):
            raise check.refuse(key, values, f"is not {channels} finite numbers" + (" above 0" if key == "std" else ""))
    return {k: v for k, v in cfg.items() if k in PRETRAINED_CFG_KEPT}


def _is_scalar(value: Any) -> bool:
    """null, true/false, an integer of at most 2**53, a finite number or a name-length string."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= 1 << 53
    return _is_number(value) or _is_text(value, MAX_NAME)


def _is_arg_value(value: Any) -> bool:
    """A JSON scalar (`_is_scalar`) or a list of at most `MAX_LIST` of them."""
    return _is_scalar(value) or (isinstance(value, list) and len(value) <= MAX_LIST and all(map(_is_scalar, value)))


def check_model_args_values(model_args: Any, *, where: str) -> dict[str, Any]:
    """`model_args` of a `config.json`: an object of at most `MAX_MODEL_ARGS` identifier keys, none of which steers
    loading (`steers_loading`), each holding a JSON scalar or a list of at most `MAX_LIST` of them. Which keys an
    architecture takes is `ssld_zoo.models.checks.check_model_args` (it calls this first)."""
    check = _Checker(where)
    args = check.object(model_args, "model_args")
    if len(args) > MAX_MODEL_ARGS:
        raise check.refuse("model_args", args, f"has more than {MAX_MODEL_ARGS} keys")
    for key, value in args.items():
        if not _ARG_NAME.fullmatch(key):
            raise check.refuse("model_args key", key, "is not a Python identifier")
        if steers_loading(key):
            raise InvalidWeightsError(
                f"{where}: model_args {key!r} would change where or how weights are loaded, which a config.json may "
                "not; model_args may hold only the architecture's constructor arguments. Remove it.",
                path=where, key=f"model_args.{key}")
        if not _is_arg_value(value):
            raise check.refuse(f"model_args.{key}", value, f"is not a number, string, true/false, null or a list of "
                                                           f"at most {MAX_LIST} of them")
    return dict(args)


def _check_block(check: _Checker, block: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in block if k not in SSLD_ZOO_BLOCK]
    if unknown:
        raise check.unknown(unknown, SSLD_ZOO_BLOCK, "in the ssld_zoo block")
    for key, value in block.items():
        valid, what = SSLD_ZOO_BLOCK[key]
        if not valid(value):
            raise check.refuse(f"ssld_zoo.{key}", value, what)
    return dict(block)


# -- Hub ids and revisions --------------------------------------------------------------------------------------------
MAX_REVISION = 255  # a ref file's name in the Hub cache
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REF_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")  # ASCII only; no '/', '%', '@', '~', '^', ':', '\\', ...
_PULL_REQUEST = re.compile(r"refs/pr/[1-9][0-9]{0,8}")


def check_revision(revision: Any) -> str:
    """`revision` if huggingface_hub may be given it: a 40-hex commit, a Hub pull-request ref `refs/pr/N`, or a
    branch or tag name that is one path component within git's check-ref-format rules, further limited to ASCII
    letters, digits and `._-+` (no `/`, `..`, `%`, `@`, control characters or spaces; not starting with `.` or `-`,
    not ending in `.` or `.lock`; at most `MAX_REVISION` characters). The Hub cache stores a branch or tag as a file
    under `refs/`, so an accepted name never leaves that folder. Anything else is one `InvalidWeightsError`."""
    if not isinstance(revision, str):
        raise InvalidWeightsError(f"The Hub revision {shorten(revision)} is not a string.", revision=None)
    if _COMMIT.fullmatch(revision) or _PULL_REQUEST.fullmatch(revision):
        return revision
    problem = (f"is longer than {MAX_REVISION} characters" if len(revision) > MAX_REVISION
               else "is not a commit (40 hex digits), a branch or tag name (ASCII letters, digits and '._-+', not "
                    "starting with '.' or '-') or refs/pr/N" if not _REF_NAME.fullmatch(revision)
               else "holds '..'" if ".." in revision
               else "ends in '.' or '.lock'" if revision.endswith((".", ".lock"))
               else None)
    if problem:
        raise InvalidWeightsError(f"The Hub revision {shorten(revision)} {problem}.", revision=revision[:MAX_REVISION])
    return revision


def check_repo_id(repo_id: Any) -> str:
    """`repo_id` if it is a Hub model id `org/name` (huggingface_hub's own `validate_repo_id`, and exactly one '/');
    anything else is one `InvalidWeightsError`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    if isinstance(repo_id, str) and repo_id.count("/") == 1:
        try:
            validate_repo_id(repo_id)
            return repo_id
        except HFValidationError as e:
            raise InvalidWeightsError(f"The Hub repo id {shorten(repo_id)} is not 'org/name' (letters, digits, '-', "
                                      "'_' and '.').", repo_id=repo_id) from e
    raise InvalidWeightsError(f"The Hub repo id {shorten(repo_id)} is not 'org/name'.",
                              repo_id=repo_id if isinstance(repo_id, str) else None)
