"""`read_pdparams`: every global beyond numpy arrays is refused before it runs, and what Paddle, numpy 1 and numpy 2
really write is read exactly (protocols 2 and 4, split big arrays, bookkeeping keys dropped)."""
from __future__ import annotations

import copyreg
import inspect
import io
import math
import os
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from conftest import REPO_ROOT
from ssld_zoo.convert.pdparams import read_pdparams, read_pdparams_fileobj
from ssld_zoo.errors import InvalidWeightsError, UnsafePickleError

pytestmark = pytest.mark.filterwarnings("ignore:No ccache found:UserWarning")  # printed by `import paddle`

NUMPY1_TARGET = REPO_ROOT / ".ci-cache" / "numpy1"
NUMPY1_SPEC = "numpy>=1.26,<2"
PROTOCOLS = [0, 2, 4]


def _sample_arrays() -> dict:
    """Arrays of the dtypes and layouts a state dict can hold (only `np` used: the numpy 1 writer runs this too)."""
    return {
        "conv1.weight": (np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) - 20) / 7,
        "bn._mean": np.linspace(-1, 1, 5),
        "step": np.array(7, dtype=np.int64),
        "scale": np.array(0.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        "half": np.arange(4, dtype=np.float16) / 3,
        "mask": np.array([True, False, True]),
        "all_bytes": np.arange(256, dtype=np.uint8),
        "int32": np.array([-2 ** 31, 2 ** 31 - 1], dtype=np.int32),
        "complex": np.array([1 + 2j, -3j], dtype=np.complex64),
    }


def _with_bookkeeping(arrays: dict) -> dict:
    """A state dict as Paddle's `_build_saved_state_dict` lays it out."""
    return {**arrays, "StructuredToParameterName@@": {key: f"param_{i}" for i, key in enumerate(arrays)}}


def _assert_same_arrays(got: dict, expected: dict) -> None:
    """Same keys in order, values bit for bit, same dtype in native byte order, C-contiguous and writeable."""
    assert list(got) == list(expected)
    for key, want in expected.items():
        value, native = got[key], want.dtype.newbyteorder("=")
        assert type(value) is np.ndarray, key
        assert value.dtype == native and value.dtype.isnative and value.shape == want.shape, key
        assert value.tobytes() == np.array(want, dtype=native, order="C").tobytes(), key
        assert value.flags.c_contiguous and value.flags.writeable, key


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- a tiny pickle assembler, so the malicious files use exactly the opcodes named ---------------------------------

def _str(text: str, protocol: int) -> bytes:
    if protocol == 0:
        return b"V" + text.encode("raw_unicode_escape") + b"\n"  # UNICODE
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _global(module: str, name: str, protocol: int) -> bytes:
    if protocol >= 4:
        return _str(module, protocol) + _str(name, protocol) + b"\x93"  # STACK_GLOBAL
    return b"c" + f"{module}\n{name}\n".encode()  # GLOBAL


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE


def _strings(items: list[str], protocol: int) -> bytes:
    return b"(" + b"".join(_str(item, protocol) for item in items) + b"l"  # MARK items LIST


def _pickle(body: bytes, protocol: int) -> bytes:
    return (b"\x80" + bytes([protocol]) if protocol >= 2 else b"") + body + b"."


def _payloads(marker: Path, protocol: int) -> dict[str, bytes]:
    """Pickles that would create `marker` (or call something foreign) if the unpickler resolved their globals."""
    m, p = str(marker), protocol
    touch = f"open({m!r}, 'w').close()"
    g = lambda module, name: _global(module, name, p)  # noqa: E731
    s = lambda text: _str(text, p)  # noqa: E731
    return {
        "builtins.eval": _call(g("builtins", "eval"), s(touch)),
        "__builtin__.eval": _call(g("__builtin__", "eval"), s(touch)),
        "builtins.exec": _call(g("builtins", "exec"), s(touch)),
        "os.system": _call(g("os", "system"), s(f"touch '{m}'")),
        "posix.system": _call(g("posix", "system"), s(f"touch '{m}'")),
        "subprocess.Popen": _call(g("subprocess", "Popen"), _strings(["touch", m], p)),
        "subprocess.check_output": _call(g("subprocess", "check_output"), _strings(["touch", m], p)),
        "builtins.getattr": _call(_call(g("builtins", "getattr"), _call(g("builtins", "__import__"), s("os")),
                                        s("system")), s(f"touch '{m}'")),
        "numpy.testing._private.utils.runstring": _call(g("numpy.testing._private.utils", "runstring"), s(touch),
                                                        b"(d"),
        "numpy.load": _call(g("numpy", "load"), s(m)),
        "numpy.core.multiarray.scalar": _call(g("numpy.core.multiarray", "scalar"), s("x")),
        "collections.OrderedDict": _call(g("collections", "OrderedDict")),
        # an otherwise valid state dict whose last value is the call
        "nested": b"(d" + s("w") + s("x") + b"s" + s("meta") + b"(" + s("x")
                  + _call(g("os", "system"), s(f"touch '{m}'")) + b"ls",
    }


def _obj_and_inst(marker: Path, protocol: int) -> dict[str, bytes]:
    """`os.system` through OBJ (callable from the stack) and INST (module and name inline) instead of REDUCE."""
    touch = _str(f"touch '{marker}'", protocol)
    return {"OBJ": b"(" + _global("os", "system", protocol) + touch + b"o", "INST": b"(" + touch + b"ios\nsystem\n"}


class _Reduce:
    """An object that pickles as `func(*args)`, the way real exploits are written."""

    def __init__(self, func: Callable, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _assert_refused(path: Path, marker: Path, refused: str) -> None:
    with pytest.raises(UnsafePickleError) as info:
        read_pdparams(path)
    message = str(info.value)
    assert str(path) in message and refused in message, message
    assert "nothing from the file was executed" in message and "PaddleClas" in message, message
    assert isinstance(info.value, InvalidWeightsError)
    assert not marker.exists(), f"{refused} ran"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hand_written_malicious_globals_are_refused_before_running(tmp_path: Path, protocol: int):
    marker = tmp_path / "marker"
    for refused, body in _payloads(marker, protocol).items():
        data = _pickle(body, protocol)
        nested_global = "os.system" if refused == "nested" else refused
        _assert_refused(_write(tmp_path / f"{refused}.pdparams", data), marker, nested_global)


def test_hand_written_payloads_do_run_under_plain_pickle(tmp_path: Path):
    """The payloads are real: plain `pickle.loads` creates the marker (so the refusals prove something)."""
    for protocol in PROTOCOLS:
        python2_names = ("__builtin__.eval",) if protocol < 3 else ()  # mapped to builtins below protocol 3 only
        for refused in ("builtins.eval", "builtins.exec", "os.system", "posix.system", "subprocess.check_output",
                        "builtins.getattr", "numpy.testing._private.utils.runstring", "nested", "OBJ", "INST",
                        *python2_names):
            marker = tmp_path / f"marker-{protocol}-{refused}"
            payloads = {**_payloads(marker, protocol), **_obj_and_inst(marker, protocol)}
            pickle.loads(_pickle(payloads[refused], protocol))
            assert marker.exists(), (protocol, refused)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reduce_objects_are_refused_even_inside_a_valid_state_dict(tmp_path: Path, protocol: int):
    marker = tmp_path / "marker"
    cases = {
        "posix.system": _Reduce(os.system, f"touch '{marker}'"),
        "builtins.exec": _Reduce(exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": _Reduce(subprocess.Popen, ["touch", str(marker)]),
        "subprocess.check_output": _Reduce(subprocess.check_output, ["touch", str(marker)]),
    }
    for refused, payload in cases.items():
        state = {**_with_bookkeeping({"w": np.ones((2, 2), np.float32)}), "meta": {"hook": [payload]}}
        data = pickle.dumps(state, protocol=protocol)
        _assert_refused(_write(tmp_path / f"{refused}.pdparams", data), marker, refused)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_inst_obj_and_extension_opcodes_are_refused(tmp_path: Path, protocol: int):
    marker = tmp_path / "marker"
    for opcode, body in _obj_and_inst(marker, protocol).items():
        _assert_refused(_write(tmp_path / f"{opcode}.pdparams", _pickle(body, protocol)), marker, "os.system")
    ext = _pickle(b"\x82\xf1(" + _str(f"touch '{marker}'", protocol) + b"tR", max(protocol, 2))  # EXT1 0xF1
    copyreg.add_extension("os", "system", 0xF1)  # the extension registry names the global
    try:
        _assert_refused(_write(tmp_path / "ext.pdparams", ext), marker, "os.system")
        pickle.loads(ext)
        assert marker.exists(), "the EXT1 payload is real"
    finally:
        copyreg.remove_extension("os", "system", 0xF1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_ids_are_refused(tmp_path: Path, protocol: int):
    body = b"Pevil\n" if protocol == 0 else _str("evil", protocol) + b"Q"  # PERSID / BINPERSID
    path = _write(tmp_path / "persid.pdparams", _pickle(body, protocol))
    with pytest.raises(UnsafePickleError, match="persistent id 'evil'") as info:
        read_pdparams(path)
    assert str(path) in str(info.value)


def test_allowed_globals_only_do_what_numpy_pickles_need(tmp_path: Path):
    """`_codecs.encode` rebuilds latin1 bytes only, and `bytes` takes no size (`bytes(10**12)` would allocate 1 TB)."""
    rot13 = _pickle(b"}" + _str("w", 2) + _call(_global("_codecs", "encode", 2), _str("x", 2), _str("rot13", 2))
                    + b"s", 2)
    huge = _pickle(_call(_global("__builtin__", "bytes", 2), b"\x8a\x06\x00\x10\xa5\xd4\xe8\x00"), 2)  # 10**12
    for name, data in {"rot13": rot13, "huge": huge}.items():
        path = _write(tmp_path / f"{name}.pdparams", data)
        with pytest.raises(InvalidWeightsError, match="not a readable .pdparams pickle") as info:
            read_pdparams(path)
        assert str(path) in str(info.value) and not isinstance(info.value, UnsafePickleError)


@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy2_pickles_round_trip_exactly(tmp_path: Path, protocol: int):
    arrays = _sample_arrays()
    data = pickle.dumps({**_with_bookkeeping(arrays), "Other@@": [1, "x"]}, protocol=protocol)
    assert b"numpy._core.multiarray" in data
    got = read_pdparams(_write(tmp_path / "w.pdparams", data))
    _assert_same_arrays(got, arrays)
    assert read_pdparams_fileobj(io.BytesIO(data)).keys() == arrays.keys()


@pytest.fixture(scope="module")
def numpy1_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The sample state dict pickled by numpy 1.26 (installed once into .ci-cache/), at protocols 2 and 4."""
    if not (NUMPY1_TARGET / "numpy").is_dir():
        install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary",
                                  ":all:", "--target", str(NUMPY1_TARGET), NUMPY1_SPEC],
                                 capture_output=True, text=True, timeout=600)
        assert install.returncode == 0, f"could not install {NUMPY1_SPEC} into {NUMPY1_TARGET} (needs PyPI): " \
                                        f"{install.stderr}"
    out = tmp_path_factory.mktemp("numpy1")
    script = "\n".join([
        "import pickle, sys", "import numpy as np", inspect.getsource(_sample_arrays),
        inspect.getsource(_with_bookkeeping),
        "assert np.__version__.startswith('1.'), np.__version__",
        "for protocol in (2, 4):",
        "    with open(f'{sys.argv[1]}/p{protocol}.pdparams', 'wb') as f:",
        "        pickle.dump(_with_bookkeeping(_sample_arrays()), f, protocol=protocol)",
    ])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NUMPY1_TARGET), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return {protocol: out / f"p{protocol}.pdparams" for protocol in (2, 4)}


@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy1_pickles_round_trip_exactly(numpy1_files: dict[int, Path], protocol: int):
    data = numpy1_files[protocol].read_bytes()
    assert b"numpy.core.multiarray" in data and b"numpy._core" not in data
    _assert_same_arrays(read_pdparams(numpy1_files[protocol]), _sample_arrays())


def _split_like_paddle(state: dict, max_elements: int) -> dict:
    """Paddle's `_unpack_saved_dict` (io_utils.py) with a small element limit instead of (2**30 - 1) // itemsize."""
    saved, info = dict(state), {}
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.size > max_elements:
            flat = value.flatten()
            info[key] = {"OriginShape": value.shape, "slices": []}
            saved.pop(key)
            for i in range(math.ceil(value.size / max_elements)):
                part = f"{key}@@.{i}"
                info[key]["slices"].append(part)
                saved[part] = flat[i * max_elements:(i + 1) * max_elements]
    saved["UnpackBigParamInfor@@"] = info
    return saved


def test_split_big_arrays_are_reassembled_like_paddle_load(tmp_path: Path):
    import paddle

    arrays = {"fc.weight": np.arange(15, dtype=np.float32).reshape(3, 5) / 3, "fc.bias": np.ones(3, np.float32),
              "conv.weight": np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)}
    saved = _split_like_paddle(_with_bookkeeping(arrays), max_elements=4)
    assert "fc.weight@@.3" in saved and "fc.weight" not in saved and "fc.bias" in saved
    path = _write(tmp_path / "split.pdparams", pickle.dumps(saved, protocol=2))
    got = read_pdparams(path)
    assert set(got) == set(arrays)
    _assert_same_arrays({key: got[key] for key in arrays}, arrays)
    by_paddle = paddle.load(str(path), return_numpy=True)
    assert set(by_paddle) == set(got)
    for key, value in by_paddle.items():
        assert value.dtype == got[key].dtype and np.array_equal(value, got[key]), key


def test_broken_split_info_names_the_problem(tmp_path: Path):
    saved = _split_like_paddle({"w": np.arange(10, dtype=np.float32)}, max_elements=4)
    cases = {
        "missing slice": ({k: v for k, v in saved.items() if k != "w@@.1"}, "slice 'w@@.1' is missing"),
        "bad shape": ({**saved, "UnpackBigParamInfor@@": {"w": {"OriginShape": (3, 4), "slices": ["w@@.0", "w@@.1",
                                                                                                   "w@@.2"]}}},
                      "cannot rebuild shape (3, 4)"),
        "bad layout": ({**saved, "UnpackBigParamInfor@@": {"w": ["w@@.0"]}}, "expected {key:"),
    }
    for name, (state, expected) in cases.items():
        path = _write(tmp_path / f"{name}.pdparams", pickle.dumps(state, protocol=2))
        with pytest.raises(InvalidWeightsError, match=re.escape(expected)) as info:
            read_pdparams(path)
        assert str(path) in str(info.value) and "'w'" in str(info.value), name


@pytest.mark.parametrize("protocol", [2, 4])
def test_real_paddle_save_files_match_paddle_load(tmp_path: Path, protocol: int):
    import paddle

    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                               paddle.nn.Linear(4 * 6 * 6, 5))
    path = tmp_path / f"net_p{protocol}.pdparams"
    paddle.save(net.state_dict(), str(path), protocol=protocol)
    data = path.read_bytes()
    assert data[:2] == b"\x80" + bytes([protocol]) and b"StructuredToParameterName@@" in data
    got = read_pdparams(path)
    expected = paddle.load(str(path), return_numpy=True)
    assert "StructuredToParameterName@@" not in got and list(got) == list(expected)
    _assert_same_arrays(got, expected)
    for key, tensor in net.state_dict().items():
        assert np.array_equal(got[key], tensor.numpy()), key
    assert got["0.weight"].dtype == np.float32 and got["0.weight"].shape == (4, 3, 3, 3)


def test_paddle_pickle_save_of_a_tensor_is_not_a_state_dict(tmp_path: Path):
    """`paddle.save(tensor)` goes through `_pickle_save`, which pickles tensors as `builtins.tuple(...)` calls."""
    import paddle

    path = tmp_path / "tensor.pdparams"
    paddle.save(paddle.ones([2, 2]), str(path))
    with pytest.raises(UnsafePickleError, match="builtins.tuple") as info:
        read_pdparams(path)
    assert str(path) in str(info.value)


def test_bad_files_raise_invalid_weights_naming_the_file(tmp_path: Path):
    valid = pickle.dumps(_with_bookkeeping(_sample_arrays()), protocol=4)
    readable = "not a readable .pdparams pickle"
    cases = {
        "truncated": (valid[:len(valid) // 2], "the file is truncated or not a .pdparams file"),
        "truncated_p2": (pickle.dumps(_sample_arrays(), protocol=2)[:-300],
                         "the file is truncated or not a .pdparams file"),
        "garbage": (b"PK\x03\x04 a zip file, not a pickle" * 10, readable),
        "empty": (b"", readable),
        "list": (pickle.dumps([np.ones(2)], protocol=4), "holds an object of type list, not a Paddle state dict"),
        "int_value": (pickle.dumps({"w": np.ones(2), "epoch": 3}, protocol=4),
                      "key 'epoch' holds an object of type int, not a numpy array"),
        "nested_dict": (pickle.dumps({"model": {"w": np.ones(2)}}, protocol=2),
                        "key 'model' holds an object of type dict"),
        "int_key": (pickle.dumps({1: np.ones(2)}, protocol=4), "the key 1 of type int"),
        "object_array": (pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=4),
                         "an array has dtype object, not a numeric weight array"),
        "string_array": (pickle.dumps({"w": np.array(["a"])}, protocol=2), "an array has dtype <U1, not a numeric"),
        "bad_split_info": (pickle.dumps({"UnpackBigParamInfor@@": [1]}, protocol=2),
                           "holds an object of type list, expected"),
    }
    for name, (data, expected) in cases.items():
        path = _write(tmp_path / f"{name}.pdparams", data)
        with pytest.raises(InvalidWeightsError, match=re.escape(expected)) as info:
            read_pdparams(path)
        assert str(path) in str(info.value), name
        assert not isinstance(info.value, UnsafePickleError), name
    missing = tmp_path / "missing.pdparams"
    with pytest.raises(InvalidWeightsError, match="no such .pdparams file") as info:
        read_pdparams(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(InvalidWeightsError, match="is a folder, not a regular file") as info:
        read_pdparams(tmp_path)
    assert str(tmp_path) in str(info.value)
    fifo = tmp_path / "pipe.pdparams"
    os.mkfifo(fifo)
    with pytest.raises(InvalidWeightsError, match="is a FIFO"):  # refused at once: nobody writes to it
        read_pdparams(fifo)


def _peak_rss_mb_of(code: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `code` in a fresh interpreter; its result and the peak memory the child itself reached (MB): VmHWM of its
    own address space (Linux keeps ru_maxrss across exec, so a child forked from a big pytest would inherit it)."""
    probe = code + ("\nhwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
                    "print('peak_kb', hwm.split()[1])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    peak = next((int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("peak_kb")), 10 ** 9)
    return result, peak / 1024


@pytest.mark.parametrize("depth", [50_000, 200_000])
def test_deeply_nested_keys_are_refused_without_crashing(tmp_path: Path, depth: int):
    """A 200 KB file of nested 1-tuples used as a dict key crashed the C unpickler's hashing (SIGSEGV)."""
    path = _write(tmp_path / "deep.pdparams", b"\x80\x02})" + b"\x85" * depth + b"K\x01s.")
    result = subprocess.run([sys.executable, "-c", f"from ssld_zoo.convert.pdparams import read_pdparams; "
                                                   f"read_pdparams({str(path)!r})"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])  # an exception, not a signal
    assert "InvalidWeightsError" in result.stderr and "nested more than 16 deep" in result.stderr


def test_huge_declared_shapes_and_lengths_allocate_nothing(tmp_path: Path):
    """A 62-byte file once made the reader allocate and touch 8.6 GB: shapes and lengths must match real data."""
    ndarray = b"cnumpy\nndarray\n"
    calls = {
        # numpy.ndarray((65536, 32768), 'f4') called directly
        "direct": b"\x80\x02}X\x01\x00\x00\x00w" + ndarray + b"J\x00\x00\x01\x00J\x00\x80\x00\x00\x86X\x02\x00\x00\x00"
                  b"f4\x86Rs.",
        # a BINBYTES8 that claims 2**40 bytes in a tiny file
        "length": b"\x80\x04}\x8c\x01w\x8e" + struct.pack("<Q", 1 << 40) + b"abcs.",
    }
    for label, data in calls.items():
        path = _write(tmp_path / f"{label}.pdparams", data)
        result, peak = _peak_rss_mb_of(f"from ssld_zoo.convert.pdparams import read_pdparams\n"
                                       f"try:\n    read_pdparams({str(path)!r})\nexcept Exception as e:\n"
                                       f"    print(type(e).__name__, e)\n")
        assert result.returncode == 0 and ("UnsafePickleError" in result.stdout or "InvalidWeightsError"
                                           in result.stdout), (label, result.stdout, result.stderr[-500:])
        assert peak < 1500, (label, peak)  # far below the gigabytes the file claimed


def test_array_state_must_hold_exactly_its_bytes(tmp_path: Path):
    """numpy's own array pickle with a shape that needs more bytes than the state carries is refused."""
    good = pickle.dumps({"w": np.ones((2, 2), np.float32)}, protocol=2)
    forged = good.replace(b"K\x02K\x02\x86", b"J\x00\x00\x01\x00K\x02\x86")  # shape (65536, 2), 16 bytes of data
    assert forged != good
    with pytest.raises(InvalidWeightsError, match=r"needs 524,288 bytes, but the file holds 16"):
        read_pdparams(_write(tmp_path / "forged.pdparams", forged))


# --- memory bounded by the input, whatever the opcodes (issue 22) ----------------------------------------------------

def _read_bytes_traced(data: bytes) -> tuple[Any, int]:
    """`read_pdparams_fileobj` of `data`: what it returned or the error it raised, and its tracemalloc peak (bytes)."""
    import tracemalloc
    tracemalloc.start()
    try:
        result: Any = read_pdparams_fileobj(io.BytesIO(data), "probe.pdparams")
    except InvalidWeightsError as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


def _memory_bound(n: int) -> int:
    from ssld_zoo.convert.pdparams import MEMORY_MULTIPLE, MEMORY_SLACK
    return MEMORY_MULTIPLE * n + MEMORY_SLACK


def _aliased_slices(copies: int) -> bytes:
    """A 4 MB array pickled once, then named by `copies` split slices (the pickler memoises it: one BINGET each)."""
    array = np.ones(1 << 20, np.float32)
    saved: dict[str, Any] = {f"w@@.{i}": array for i in range(copies)}
    saved["UnpackBigParamInfor@@"] = {"w": {"OriginShape": [copies << 20], "slices": list(saved)}}
    return pickle.dumps(saved, protocol=2)


HOSTILE_STREAMS = {
    # the 20-byte protocol-5 file: BYTEARRAY8 declaring 2e9 bytes (it reached 2.6 GB)
    "BYTEARRAY8 of 2e9 bytes": (b"\x80\x05}\x8c\x01w\x96" + struct.pack("<Q", 2 * 10 ** 9) + b"s.",
                                "asks for 2,000,000,000 bytes, but only 2 remain"),
    "BINUNICODE8 of 2**40 bytes": (b"\x80\x04}\x8d" + struct.pack("<Q", 1 << 40) + b"ab.",
                                   "asks for 1,099,511,627,776 bytes"),
    "BINBYTES of 4 GB": (b"\x80\x03}X\x01\x00\x00\x00wB" + b"\xff" * 4 + b"s.", "asks for 4,294,967,295 bytes"),
    "LONG4 of 2 GB": (b"\x80\x02}X\x01\x00\x00\x00w\x8b" + struct.pack("<i", 2 ** 31 - 1) + b"s.",
                      "asks for 2,147,483,647 bytes"),
    "a negative BINSTRING length": (b"\x80\x02}T" + struct.pack("<i", -5) + b".", "asks for -5 bytes"),
    "FRAME of 2**60 bytes": (b"\x80\x04\x95" + struct.pack("<Q", 1 << 60) + b"}.", "asks for 1,152,921,504,606"),
    # one memoised array named by 20 slices (the 20 MB file grew memory by 1 GB)
    "20 slices of one memoised array": (_aliased_slices(20), "name the same array again"),
    "one memoised text encoded 50 times": (
        b"\x80\x02c_codecs\nencode\nq\x00X" + struct.pack("<I", 1 << 20) + b"a" * (1 << 20)
        + b"q\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03R(" + b"h\x00h\x03R" * 50 + b"l.",
        "_codecs.encode would make more than"),
    "2 MB of EMPTY_SET": (b"\x80\x04" + b"\x8f" * 2_000_000 + b".", "pickle opcodes in 2,000,003 bytes"),
    "a structured dtype of 100,000 fields": (
        b"\x80\x02}X\x01\x00\x00\x00wcnumpy\ndtype\nX" + struct.pack("<I", 300_000) + b"f4," * 100_000
        + b"\x89\x88\x87Rs.", "numpy pickles rebuild arrays"),
}


@pytest.mark.parametrize("case", list(HOSTILE_STREAMS))
def test_no_opcode_allocates_beyond_the_input(case: str):
    """Every length is checked against the bytes that remain, before anything is allocated; objects, bytes made
    from memoised objects and arrays named again are counted, so memory stays within a small multiple of the input."""
    data, expected = HOSTILE_STREAMS[case]
    result, peak = _read_bytes_traced(data)
    assert isinstance(result, InvalidWeightsError) and expected in str(result), (case, result)
    assert "\n" not in str(result) and len(str(result)) < 400, result
    assert peak <= _memory_bound(len(data)), (case, peak, len(data))


def test_aliased_slices_are_refused_before_anything_is_joined():
    data = _aliased_slices(20)
    _, peak = _read_bytes_traced(data)
    assert peak < 4 * len(data)  # its protocol 2 text, bytes and array once each; it once grew by 20 arrays


NOT_PLAIN_KEYS = {
    "an int": (b"\x80\x02}K\x01K\x02s.", "the key 1 of type int"),
    "a 5,000-digit int": (b"\x80\x02}\x8b" + struct.pack("<i", 2100) + b"\x7f" * 2100 + b"K\x02s.",
                          "the key an integer of 16,799 bits of type int"),
    "bytes": (b"\x80\x03}C\x01kK\x02s.", "the key b'k' of type bytes"),
    "a tuple": (b"\x80\x02}K\x01K\x02\x86K\x03s.", "the key (1, 2) of type tuple"),
    "a lone surrogate": (b"\x80\x02}X\x03\x00\x00\x00\xed\xa0\x80K\x02s.", "the key '\\ud800', which is not valid"),
    "an int in the split info": (b"\x80\x02}X\x15\x00\x00\x00UnpackBigParamInfor@@}K\x07}ss.",
                                 "UnpackBigParamInfor@@ has the key 7 of type int"),
}


@pytest.mark.parametrize("case", list(NOT_PLAIN_KEYS))
def test_keys_that_are_not_plain_strings_are_one_line(case: str):
    data, expected = NOT_PLAIN_KEYS[case]
    with pytest.raises(InvalidWeightsError) as caught:
        read_pdparams_fileobj(io.BytesIO(data), "keys.pdparams")
    message = str(caught.value)
    assert expected in message and message.startswith("keys.pdparams: ") and "\n" not in message, message
    message.encode("ascii")  # printable on any terminal


def test_split_slices_of_mixed_dtypes_are_refused():
    """np.concatenate would widen every 1-byte slice to the widest slice's dtype: 16 times the memory."""
    saved = {"w@@.0": np.ones(8, np.uint8), "w@@.1": np.ones(1, np.complex128),
             "UnpackBigParamInfor@@": {"w": {"OriginShape": [9], "slices": ["w@@.0", "w@@.1"]}}}
    with pytest.raises(InvalidWeightsError, match="its slices have dtypes uint8 and complex128"):
        read_pdparams_fileobj(io.BytesIO(pickle.dumps(saved, protocol=2)), "mixed.pdparams")


# --- properties over generated and mutated streams -------------------------------------------------------------------

def _seed_files() -> list[bytes]:
    """Real small state dicts as the project writes them in these tests, in every protocol Paddle uses."""
    arrays = _with_bookkeeping(_sample_arrays())
    split = _split_like_paddle(_with_bookkeeping({"fc.weight": np.arange(15, dtype=np.float32).reshape(3, 5)}), 4)
    return [pickle.dumps(state, protocol=p) for state in (arrays, split) for p in PROTOCOLS]


SEEDS = _seed_files()


def _check_property(data: bytes) -> None:
    """Only the project's typed errors escape; a success is a dict of numpy arrays; memory within the bound."""
    result, peak = _read_bytes_traced(data)
    assert isinstance(result, (dict, InvalidWeightsError)), type(result)
    if isinstance(result, dict):
        assert all(type(k) is str and type(v) is np.ndarray for k, v in result.items())
    else:
        assert "\n" not in str(result)
    assert peak <= _memory_bound(len(data)), (peak, len(data))


def _mutated() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Any) -> bytes:
        data = bytearray(draw(st.sampled_from(SEEDS)))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data)))
            kind = draw(st.sampled_from(["byte", "insert", "delete", "repeat", "length", "truncate"]))
            if kind == "byte" and at < len(data):
                data[at] = draw(st.integers(0, 255))
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            elif kind == "delete":
                del data[at:at + draw(st.integers(1, 16))]
            elif kind == "repeat":  # a run of opcodes again: memo references, containers, calls
                piece = bytes(data[at:at + draw(st.integers(1, 32))])
                data[at:at] = piece * draw(st.integers(1, 64))
            elif kind == "length":  # a huge length field anywhere
                data[at:at] = draw(st.sampled_from([b"\x96", b"\x8e", b"\x8d", b"B", b"X", b"\x8b", b"\x95"])) + \
                    struct.pack("<Q", draw(st.integers(0, 2 ** 63)))
            else:
                del data[at:]
        return bytes(data)
    return build()


def test_property_mutated_pdparams_raise_only_typed_errors_within_memory():
    from datetime import timedelta

    from hypothesis import given, settings

    @settings(deadline=timedelta(seconds=10))
    @given(_mutated())
    def check(data: bytes) -> None:
        _check_property(data)
    check()


def test_property_generated_opcode_streams_raise_only_typed_errors_within_memory():
    from datetime import timedelta

    from hypothesis import given, settings
    from hypothesis import strategies as st
    opcodes = st.sampled_from([bytes([code]) for code in range(256)])
    argument = st.one_of(st.just(b""), st.binary(max_size=9), st.integers(0, 2 ** 64 - 1).map(
        lambda n: struct.pack("<Q", n)))
    streams = st.lists(st.tuples(opcodes, argument), max_size=60).map(
        lambda ops: b"\x80\x04" + b"".join(code + arg for code, arg in ops) + b".")

    @settings(deadline=timedelta(seconds=10))
    @given(streams)
    def check(data: bytes) -> None:
        _check_property(data)
    check()
