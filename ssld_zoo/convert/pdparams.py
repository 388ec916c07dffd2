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

Memory is bounded by the input: no file of N bytes makes the reader hold more than about `MEMORY_MULTIPLE` * N +
`MEMORY_SLACK` bytes (`tests/test_pdparams.py` measures it with tracemalloc over generated and mutated files):

* every opcode with a length field (`BINBYTES*`, `BINUNICODE*`, `BYTEARRAY8`, `*BINSTRING`, `LONG1/4`, `FRAME`) is
  refused before anything is allocated when the length exceeds the bytes that remain in the input;
* the objects opcodes make are counted: at most N / `BYTES_PER_OPCODE` + `FREE_OPCODES` opcodes run;
* bytes made from other objects (`_codecs.encode` of a text, an array's data given to numpy) are counted each time,
  at most twice N in all, so a memoised text or array state used again and again cannot multiply memory;
* the arrays in the result are counted each time they are used (a split array's slices included): together they
  hold at most N bytes, as the arrays of a real file do, so keys or slices that all name one memoised array are
  refused before anything is joined or copied.
"""
from __future__ import annotations

import _codecs
import _compat_pickle
import math
import os
import pickle
import struct
from typing import IO, TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from ssld_zoo.errors import InvalidWeightsError, UnsafePickleError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x without the numpy._core alias
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]  # the same function, numpy 1's path

_SPLIT_INFO = "UnpackBigParamInfor@@"  # Paddle's spelling
_DTYPE_CODE_CHARS = 8  # numpy pickles a dtype as dtype('f4', False, True): a short type code, never a structure
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


MAX_DEPTH = 16  # containers inside containers; a Paddle state dict needs 4 (numpy's array state 2)
BYTES_PER_OPCODE = 128  # a real .pdparams runs about one opcode per 5 KB of weights
FREE_OPCODES = 32_768  # so small files of many tiny arrays read too
MADE_BYTES_PER_BYTE = 2  # bytes made from other objects per input byte: latin1 text → bytes → array data
MEMORY_MULTIPLE, MEMORY_SLACK = 16, 16 << 20  # the bound the tests hold the reader to (see the module docstring)


class _BoundedFile:
    """The file as the unpickler reads it: a length field that asks for more bytes than the file still holds is
    refused before anything is allocated (a 62-byte file must not cost gigabytes)."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        self._file, self._name = file, name
        start = file.tell()
        self._size = file.seek(0, os.SEEK_END)
        file.seek(start)

    @property
    def size(self) -> int:
        return self._size

    def left(self) -> int:
        """The bytes not read yet."""
        return self._size - self._file.tell()

    def _check(self, n: int) -> None:
        left = self.left()
        if n > left:
            raise InvalidWeightsError(f"{self._name}: the pickle asks for {n:,} bytes at offset {self._file.tell():,}, "
                                      f"but only {left:,} remain; the file is truncated or not a .pdparams file.")

    def read(self, n: int = -1) -> bytes:
        if n >= 0:
            self._check(n)
        return self._file.read(n)

    def readinto(self, buffer: Any) -> int:
        self._check(len(buffer))
        return self._file.readinto(buffer)  # type: ignore[attr-defined]

    def readline(self) -> bytes:
        return self._file.readline()


if TYPE_CHECKING:
    class _PyUnpickler(pickle._Unpickler):
        """`pickle._Unpickler` with the undocumented internals that typeshed leaves out."""

        dispatch: ClassVar[dict[int, Callable[[Any], None]]]
        stack: list[Any]
        read: Callable[[int], bytes]
        readline: Callable[[], bytes]
        append: Callable[[Any], None]
        _unframer: Any

        def _decode_string(self, value: bytes) -> Any: ...

        def load_reduce(self) -> None: ...
        def load_build(self) -> None: ...
        def load_tuple1(self) -> None: ...
        def load_tuple2(self) -> None: ...
        def load_tuple3(self) -> None: ...
        def load_tuple(self) -> None: ...
        def load_list(self) -> None: ...
        def load_dict(self) -> None: ...
        def load_frozenset(self) -> None: ...
        def load_append(self) -> None: ...
        def load_setitem(self) -> None: ...
        def load_appends(self) -> None: ...
        def load_setitems(self) -> None: ...
        def load_additems(self) -> None: ...
else:
    _PyUnpickler = pickle._Unpickler


class _ArrayUnpickler(_PyUnpickler):
    """The pure-Python unpickler, restricted to what numpy arrays in a dict need.

    It resolves only the globals in `_ALLOWED`, calls them only as numpy's own pickles do (`_reconstruct` of an empty
    array, then its state with exactly the bytes its shape needs), refuses persistent ids and object construction,
    and bounds the nesting of containers, so that no file can run code, exhaust the stack or allocate more memory
    than the data it holds.
    """

    dispatch = dict(_PyUnpickler.dispatch)

    def __init__(self, file: IO[bytes], name: str) -> None:
        self._input = _BoundedFile(file, name)
        super().__init__(self._input, encoding="latin1")
        self._name = name
        self._depths: dict[int, int] = {}
        self._containers: list[Any] = []  # keeps every tracked container alive, so its id stays its own
        self._opcodes, self._max_opcodes = 0, self._input.left() // BYTES_PER_OPCODE + FREE_OPCODES
        self._made, self._max_made = 0, self._input.left() * MADE_BYTES_PER_BYTE

    @property
    def input_size(self) -> int:
        return self._input.size

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
        raise _refused(self._name, f"the persistent id {_brief(pid)}")

    # -- memory: lengths, opcodes and bytes made, each bounded by the input --------------------------------------
    def _input_left(self) -> int:
        """The input bytes not consumed yet: those left in the file and in the frame being read."""
        frame, in_frame = self._unframer.current_frame, 0
        if frame is not None:
            with frame.getbuffer() as view:
                in_frame = view.nbytes - frame.tell()
        return self._input.left() + in_frame

    def _length(self, fmt: str) -> int:
        """Read an opcode's length field (`struct` format `fmt`), refused before anything is allocated when it is
        negative or asks for more bytes than the input still holds."""
        (n,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        left = self._input_left()
        if not 0 <= n <= left:
            raise InvalidWeightsError(f"{self._name}: the pickle asks for {n:,} bytes, but only {left:,} remain; the "
                                      "file is truncated or not a .pdparams file.")
        return n

    def count_opcode(self) -> None:
        self._opcodes += 1
        if self._opcodes > self._max_opcodes:
            raise InvalidWeightsError(f"{self._name}: more than {self._max_opcodes:,} pickle opcodes in "
                                      f"{self.input_size:,} bytes; a Paddle state dict is mostly weight bytes, so "
                                      "this is not a .pdparams file.")

    def _make(self, n: int, what: str) -> None:
        """Count `n` bytes about to be made from objects already read (`what` makes them)."""
        self._made += n
        if self._made > self._max_made:
            raise InvalidWeightsError(f"{self._name}: {what} would make more than {self._max_made:,} bytes from a "
                                      f"{self.input_size:,}-byte file; the same data is used again and again, "
                                      "which a Paddle state dict never does.")

    def load_binbytes(self) -> None:
        self.append(self.read(self._length("<I")))

    def load_binbytes8(self) -> None:
        self.append(self.read(self._length("<Q")))

    def load_short_binbytes(self) -> None:
        self.append(self.read(self._length("<B")))

    def load_bytearray8(self) -> None:
        self.append(bytearray(self.read(self._length("<Q"))))

    def load_binunicode(self) -> None:
        self.append(str(self.read(self._length("<I")), "utf-8", "surrogatepass"))

    def load_binunicode8(self) -> None:
        self.append(str(self.read(self._length("<Q")), "utf-8", "surrogatepass"))

    def load_short_binunicode(self) -> None:
        self.append(str(self.read(self._length("<B")), "utf-8", "surrogatepass"))

    def load_binstring(self) -> None:
        self.append(self._decode_string(self.read(self._length("<i"))))

    def load_short_binstring(self) -> None:
        self.append(self._decode_string(self.read(self._length("<B"))))

    def load_long1(self) -> None:
        self.append(pickle.decode_long(self.read(self._length("<B"))))

    def load_long4(self) -> None:
        self.append(pickle.decode_long(self.read(self._length("<i"))))

    def load_frame(self) -> None:
        self._unframer.load_frame(self._length("<Q"))

    # -- nesting ------------------------------------------------------------------------------------------------
    def _depth(self, obj: Any) -> int:
        return self._depths.get(id(obj), 0)

    def _nest(self, container: Any, items: Any) -> None:
        depth = max(self._depth(container), 1 + max((self._depth(i) for i in items), default=0))
        if depth > MAX_DEPTH:
            raise InvalidWeightsError(f"{self._name}: containers nested more than {MAX_DEPTH} deep; a Paddle state "
                                      "dict is a flat dict of numpy arrays, so this is not a .pdparams file.")
        if id(container) not in self._depths:
            self._containers.append(container)
        self._depths[id(container)] = depth

    # -- calls --------------------------------------------------------------------------------------------------
    def load_reduce(self) -> None:
        args, func = self.stack[-1], self.stack[-2]
        if func is np.ndarray or (func is _reconstruct and not (
                isinstance(args, tuple) and len(args) == 3 and args[0] is np.ndarray and args[1] == (0,))) or (
                func is np.dtype and not (isinstance(args, tuple) and args and type(args[0]) is str
                                          and len(args[0]) <= _DTYPE_CODE_CHARS)):
            raise _refused(self._name, f"the call {getattr(func, '__name__', func)} with {_brief(args)} (numpy "
                                       "pickles rebuild arrays from an empty one and their data, and dtypes from "
                                       "a type code)")
        if func is _latin1_encode and isinstance(args, tuple) and args and isinstance(args[0], str):
            self._make(len(args[0]), "_codecs.encode")
        _PyUnpickler.load_reduce(self)

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if type(inst) is np.ndarray:
            _check_array_state(state, self._name)
            self._make(len(state[4]), "an array's data")
        elif not isinstance(inst, np.dtype):
            raise _refused(self._name, f"setting the state of a {type(inst).__name__}")
        _PyUnpickler.load_build(self)

    def refuse_objects(self) -> None:
        raise _refused(self._name, "constructing an object (NEWOBJ/OBJ/INST)")

    def load_inst(self) -> None:
        """INST names its class inline: look it up first, so a refusal names it, then refuse the construction."""
        module, name = self.readline()[:-1].decode("ascii"), self.readline()[:-1].decode("ascii")
        self.find_class(module, name)
        self.refuse_objects()


def _tracked(load: Callable[[Any], None], items: Callable[[Any], list[Any]]) -> Callable[[Any], None]:
    """The unpickler op `load`, then the nesting check of the container it built or grew from `items`."""
    def run(self: _ArrayUnpickler) -> None:
        before = items(self)
        load(self)
        self._nest(self.stack[-1], before)
    return run


def _top(n: int) -> Callable[[Any], list[Any]]:
    return lambda self: self.stack[-n:]


def _marked(self: Any) -> list[Any]:
    return list(self.stack)  # after MARK, the pure-Python unpickler's stack holds just the marked items


_PY = _PyUnpickler
_ArrayUnpickler.dispatch.update({
    pickle.TUPLE1[0]: _tracked(_PY.load_tuple1, _top(1)), pickle.TUPLE2[0]: _tracked(_PY.load_tuple2, _top(2)),
    pickle.TUPLE3[0]: _tracked(_PY.load_tuple3, _top(3)), pickle.TUPLE[0]: _tracked(_PY.load_tuple, _marked),
    pickle.LIST[0]: _tracked(_PY.load_list, _marked), pickle.DICT[0]: _tracked(_PY.load_dict, _marked),
    pickle.FROZENSET[0]: _tracked(_PY.load_frozenset, _marked),
    pickle.APPEND[0]: _tracked(_PY.load_append, _top(1)), pickle.SETITEM[0]: _tracked(_PY.load_setitem, _top(2)),
    pickle.APPENDS[0]: _tracked(_PY.load_appends, _marked), pickle.SETITEMS[0]: _tracked(_PY.load_setitems, _marked),
    pickle.ADDITEMS[0]: _tracked(_PY.load_additems, _marked),
    pickle.REDUCE[0]: _ArrayUnpickler.load_reduce, pickle.BUILD[0]: _ArrayUnpickler.load_build,
    pickle.INST[0]: _ArrayUnpickler.load_inst,
    **{code[0]: _ArrayUnpickler.refuse_objects for code in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ)},
    **{code[0]: load for code, load in (
        (pickle.BINBYTES, _ArrayUnpickler.load_binbytes), (pickle.BINBYTES8, _ArrayUnpickler.load_binbytes8),
        (pickle.SHORT_BINBYTES, _ArrayUnpickler.load_short_binbytes),
        (pickle.BYTEARRAY8, _ArrayUnpickler.load_bytearray8), (pickle.BINUNICODE, _ArrayUnpickler.load_binunicode),
        (pickle.BINUNICODE8, _ArrayUnpickler.load_binunicode8),
        (pickle.SHORT_BINUNICODE, _ArrayUnpickler.load_short_binunicode),
        (pickle.BINSTRING, _ArrayUnpickler.load_binstring),
        (pickle.SHORT_BINSTRING, _ArrayUnpickler.load_short_binstring),
        (pickle.LONG1, _ArrayUnpickler.load_long1), (pickle.LONG4, _ArrayUnpickler.load_long4),
        (pickle.FRAME, _ArrayUnpickler.load_frame))},
})


def _counted(load: Callable[[Any], None]) -> Callable[[Any], None]:
    """The unpickler op `load`, counted against the opcode budget first."""
    def run(self: _ArrayUnpickler) -> None:
        self.count_opcode()
        load(self)
    return run


_ArrayUnpickler.dispatch = {code: _counted(load) for code, load in _ArrayUnpickler.dispatch.items()}


def _check_array_state(state: Any, name: str) -> None:
    """numpy's array state `(version, shape, dtype, fortran, data)` with exactly `prod(shape) * itemsize` bytes."""
    if isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype) and (
            state[2].kind not in _WEIGHT_KINDS):
        raise InvalidWeightsError(f"{name}: an array has dtype {state[2]}, not a numeric weight array; a Paddle state "
                                  "dict holds numbers only.")
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple)
            and all(type(d) is int and d >= 0 for d in state[1]) and isinstance(state[2], np.dtype)
            and isinstance(state[4], (bytes, bytearray))):
        raise InvalidWeightsError(f"{name}: an array's state is not numpy's (version, shape, dtype, fortran, bytes): "
                                  f"{_brief(state)}.")
    need = math.prod(state[1]) * state[2].itemsize
    if need != len(state[4]):
        raise InvalidWeightsError(f"{name}: an array of shape {state[1]} and dtype {state[2]} needs {need:,} bytes, "
                                  f"but the file holds {len(state[4]):,} for it.")


def read_pdparams(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a `.pdparams` file as `{structured name: array}`; see `read_pdparams_fileobj`."""
    from ssld_zoo.reading import open_regular
    name = os.fspath(path)
    if not os.path.lexists(name):
        raise InvalidWeightsError(f"{name}: no such .pdparams file.", path=name)
    with open_regular(name, what=".pdparams file", error=InvalidWeightsError) as file:  # a FIFO is refused, not read
        return read_pdparams_fileobj(file, name)


def read_pdparams_fileobj(file: IO[bytes], name: str = "<file object>") -> dict[str, np.ndarray]:
    """Unpickle a Paddle state dict from a binary file object (`name` is used in errors).

    Split arrays are reassembled, `@@` bookkeeping keys dropped, and every array is returned writeable,
    C-contiguous and in native byte order (as numpy's own unpickling returns them), its dtype otherwise unchanged.
    Raises `UnsafePickleError` for any global beyond numpy arrays and `InvalidWeightsError` for anything that is not
    a readable dict of numeric arrays.
    """
    start = file.tell()
    head = file.read(4)
    if not head:
        raise InvalidWeightsError(f"{name}: not a readable .pdparams pickle: the file is empty.")
    if head == b"PK\x03\x04":
        raise InvalidWeightsError(f"{name}: not a readable .pdparams pickle: it is a zip archive (a torch checkpoint, "
                                  "or another format), not the pickle paddle.save writes.")
    file.seek(start)
    try:
        unpickler = _ArrayUnpickler(file, name)
        obj = unpickler.load()
    except (UnsafePickleError, InvalidWeightsError):
        raise
    except Exception as exc:  # any failure inside the unpickler means a damaged or foreign file
        raise InvalidWeightsError(
            f"{name}: not a readable .pdparams pickle: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(obj, dict):
        raise InvalidWeightsError(f"{name}: the pickle holds an object of type {type(obj).__name__}, not a Paddle "
                                  "state dict (a dict of numpy arrays).")
    for key in obj:
        _check_key(key, name, "the state dict")
    used = sum(value.nbytes for value in obj.values() if type(value) is np.ndarray)
    if used > unpickler.input_size:  # counted for every key, so one memoised array named twice counts twice
        raise InvalidWeightsError(f"{name}: its keys name {used:,} bytes of arrays, more than the file's "
                                  f"{unpickler.input_size:,}: keys or split slices name the same array again, which "
                                  "a Paddle state dict never does.")
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


def _check_key(key: Any, name: str, where: str) -> None:
    """A state dict key must be plain text: a `str` that is valid Unicode (no lone surrogates), as Paddle writes."""
    if type(key) is not str:
        raise InvalidWeightsError(f"{name}: {where} has the key {_brief(key)} of type {type(key).__name__}; Paddle "
                                  "state dict keys are strings.")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidWeightsError(f"{name}: {where} has the key {_brief(key)}, which is not valid Unicode text; "
                                  "Paddle state dict keys are plain strings.") from exc


def _brief(value: Any) -> str:
    """A short description of a value from the file for an error message: never a huge or unprintable repr."""
    if isinstance(value, (str, bytes, bytearray)):
        return ascii(value[:60]) + ("..." if len(value) > 60 else "")
    if _is_small_scalar(value):
        return repr(value)
    if type(value) is int:
        return f"an integer of {value.bit_length():,} bits"
    if type(value) in (tuple, list) and len(value) <= 8 and all(_is_small_scalar(item) for item in value):
        return repr(value)  # a shape, say
    if isinstance(value, (tuple, list, dict, set, frozenset)):
        return f"a {type(value).__name__} of {len(value):,} items"
    return f"a {type(value).__name__}"


def _is_small_scalar(value: Any) -> bool:
    return value is None or type(value) in (bool, float) or (type(value) is int and value.bit_length() <= 64)


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
        _check_key(key, name, _SPLIT_INFO)
        where = f"{name}: split array {key!r} in {_SPLIT_INFO}"
        shape = spec.get("OriginShape") if isinstance(spec, dict) else None
        slices = spec.get("slices") if isinstance(spec, dict) else None
        if not (isinstance(shape, (tuple, list)) and all(type(d) is int for d in shape)
                and isinstance(slices, list) and slices):
            raise InvalidWeightsError(f"{where}: expected {layout}, got {_brief(spec)}.")
        parts: list[np.ndarray] = []
        for part in slices:
            value = joined.pop(part, None) if isinstance(part, str) else None
            if type(value) is not np.ndarray:
                raise InvalidWeightsError(f"{where}: the slice {_brief(part)} is missing or not a numpy array.")
            if parts and value.dtype != parts[0].dtype:  # concatenate would widen every slice to the widest dtype
                raise InvalidWeightsError(f"{where}: its slices have dtypes {parts[0].dtype} and {value.dtype}; the "
                                          "slices of one array share its dtype.")
            parts.append(value.ravel())
        try:
            joined[key] = np.concatenate(parts).reshape(shape)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidWeightsError(f"{where}: cannot rebuild shape {_brief(tuple(shape))}: "
                                      f"{str(exc)[:200]}") from exc
    return joined
