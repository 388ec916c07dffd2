"""Read PaddleClas `.pdparams` files without Paddle, and without running anything the file asks for.

What `paddle.save(layer.state_dict(), path)` writes (Paddle's `python/paddle/framework/io.py`: `_legacy_save`,
`_build_saved_state_dict`; `python/paddle/framework/io_utils.py`: `_unpack_saved_dict`, `_pack_loaded_dict`):

* a plain pickle (protocol 2 up to Paddle 2.0, 4 by default since 2.1) of a `dict` mapping structured names to
  `numpy.ndarray`, plus `"StructuredToParameterName@@"` -> `{structured name: parameter name}`; `paddle.load` reads
  it with `encoding="latin1"`;
* numpy pickles an array with `numpy.core.multiarray._reconstruct` (numpy 1) or `numpy._core.multiarray._reconstruct`
  (numpy 2), `numpy.ndarray` and `numpy.dtype`; below protocol 3 the pickle stores bytes as
  `_codecs.encode(text, "latin1")`, and empty bytes (the data of an empty array) as `__builtin__.bytes()`;
* below protocol 4, an array of more than `(2**30 - 1) // itemsize` elements is flattened and split into the keys
  `"<key>@@.0"`, `"<key>@@.1"`, ..., recorded as `"UnpackBigParamInfor@@"` -> `{key: {"OriginShape": shape,
  "slices": ["<key>@@.0", ...]}}`.

The unpickler resolves exactly those globals (`_codecs.encode` for latin1 only, `bytes` with no argument only) and
refuses every other global and every persistent id before anything is called.
"""
from __future__ import annotations

import _codecs
import _compat_pickle
import os
import pickle
from typing import IO, Any

import numpy as np

from ..errors import InvalidWeightsError, UnsafePickleError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x without the numpy._core alias
    from numpy.core.multiarray import _reconstruct

_SPLIT_INFO = "UnpackBigParamInfor@@"  # Paddle's spelling
_WEIGHT_KINDS = "biufc"  # bool, int, uint, float, complex


def _latin1_encode(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as a protocol 2 pickle calls it for bytes; any codec but latin1 is refused."""
    if encoding != "latin1":
        raise ValueError(f"_codecs.encode with encoding {encoding!r} (only 'latin1' rebuilds bytes)")
    return _codecs.encode(text, "latin1")


def _empty_bytes() -> bytes:
    """`bytes()` as a protocol 2 pickle writes b""; `bytes(n)` would allocate n bytes, so it takes no argument."""
    return b""


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


def _refused(name: str, what: str) -> UnsafePickleError:
    return UnsafePickleError(
        f"{name}: refused to unpickle {what}; nothing from the file was executed. This file is not a plain Paddle "
        "state dict (a dict of numpy arrays): only load .pdparams files published by PaddleClas.")


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays need (`_ALLOWED`) and no persistent ids."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        super().__init__(file, encoding="latin1")
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        what = f"the global {module}.{name}"
        py3_module, py3_name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if (py3_module, py3_name) != (module, name):  # a Python 2 name, as protocol < 3 pickles write them
            what += f" (Python 3: {py3_module}.{py3_name})"
        raise _refused(self._name, what)

    def persistent_load(self, pid: Any) -> Any:
        raise _refused(self._name, f"the persistent id {pid!r:.80}")


def read_pdparams(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a `.pdparams` file as `{structured name: array}`; see `read_pdparams_fileobj`."""
    name = os.fspath(path)
    try:
        file = open(name, "rb")
    except FileNotFoundError:
        raise InvalidWeightsError(f"{name}: no such .pdparams file.") from None
    except OSError as exc:
        raise InvalidWeightsError(f"{name}: cannot open the .pdparams file: {exc.strerror or exc}.") from None
    with file:
        return read_pdparams_fileobj(file, name)


def read_pdparams_fileobj(file: IO[bytes], name: str = "<file object>") -> dict[str, np.ndarray]:
    """Unpickle a Paddle state dict from a binary file object (`name` is used in errors).

    Split arrays are reassembled, `@@` bookkeeping keys dropped, and every array is returned writeable,
    C-contiguous and in native byte order (as numpy's own unpickling returns them), its dtype otherwise unchanged.
    Raises `UnsafePickleError` for any global beyond numpy arrays and `InvalidWeightsError` for anything that is not
    a readable dict of numeric arrays.
    """
    try:
        obj = _ArrayUnpickler(file, name).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # any failure inside the unpickler means a damaged or foreign file
        raise InvalidWeightsError(
            f"{name}: not a readable .pdparams pickle: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise InvalidWeightsError(f"{name}: the pickle holds an object of type {type(obj).__name__}, not a Paddle "
                                  "state dict (a dict of numpy arrays).")
    bad_key = next((key for key in obj if not isinstance(key, str)), None)
    if bad_key is not None:
        raise InvalidWeightsError(f"{name}: the state dict has the key {bad_key!r:.80} of type "
                                  f"{type(bad_key).__name__}; Paddle state dict keys are strings.")
    arrays = {}
    for key, value in _join_split_arrays(obj, name).items():
        if key.endswith("@@"):
            continue
        if type(value) is not np.ndarray:
            raise InvalidWeightsError(f"{name}: key {key!r} holds an object of type {type(value).__name__}, not a "
                                      "numpy array; this is not a Paddle state dict of weights.")
        if value.dtype.kind not in _WEIGHT_KINDS:
            raise InvalidWeightsError(f"{name}: key {key!r} has dtype {value.dtype}, not a numeric weight array.")
        native = value.dtype.newbyteorder("=")
        usable = value.dtype == native and value.flags.c_contiguous and value.flags.writeable
        arrays[key] = value if usable else np.array(value, dtype=native, order="C")
    return arrays


def _join_split_arrays(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """Undo Paddle's `_unpack_saved_dict`: concatenate the flattened slices of each split array and reshape."""
    info = obj.get(_SPLIT_INFO)
    if info is None:
        return obj
    layout = "{key: {'OriginShape': shape, 'slices': [slice keys]}}"
    if not isinstance(info, dict):
        raise InvalidWeightsError(f"{name}: {_SPLIT_INFO} holds an object of type {type(info).__name__}, "
                                  f"expected {layout}.")
    joined = dict(obj)
    for key, spec in info.items():
        where = f"{name}: split array {key!r} in {_SPLIT_INFO}"
        shape = spec.get("OriginShape") if isinstance(spec, dict) else None
        slices = spec.get("slices") if isinstance(spec, dict) else None
        if not (isinstance(key, str) and isinstance(shape, (tuple, list)) and all(type(d) is int for d in shape)
                and isinstance(slices, list) and slices):
            raise InvalidWeightsError(f"{where}: expected {layout}, got {spec!r:.200}.")
        parts = []
        for part in slices:
            value = joined.pop(part, None) if isinstance(part, str) else None
            if type(value) is not np.ndarray:
                raise InvalidWeightsError(f"{where}: the slice {part!r:.80} is missing or not a numpy array.")
            parts.append(value.ravel())
        try:
            joined[key] = np.concatenate(parts).reshape(shape)
        except (TypeError, ValueError) as exc:
            raise InvalidWeightsError(f"{where}: cannot rebuild shape {tuple(shape)}: {exc}") from None
    return joined
