"""`ssld_zoo.reading`: inputs are regular files, never waited on, bounded in size, depth and number length, and every
bad one is one typed error naming the file; folder walks read each folder once, whatever links lead back.

The property tests (`test_property_*`) generate the inputs (Hypothesis; conftest.py's "ci" profile keeps them short),
and the FIFO tests show each kind of reader refusing a named pipe at once instead of blocking on it.
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings, strategies as st

from ssld_zoo.errors import CatalogueError, DataError, InputError, RecipeError, SsldZooError
from ssld_zoo.reading import (MAX_DEPTH, nesting_depth, open_regular, parse_json, parse_yaml, read_bytes, read_json,
                              read_text, read_yaml, shorten, walk_files)

SECONDS = 5.0  # far above what any example here takes; a reader that blocks or recurses runs past it


def bounded(call: Callable[[], Any], *, size: int) -> tuple[Any, BaseException | None]:
    """Run `call`; return (its value, the exception it raised). It must finish within SECONDS, raise nothing but an
    `SsldZooError`, and hold less than a small multiple of its input's `size` at its peak."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return call(), None
    except SsldZooError as e:
        return None, e
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert time.perf_counter() - start < SECONDS
        assert peak < 64 * size + (2 << 20), f"peak {peak:,} bytes for {size:,} bytes of input"


def finishes(call: Callable[[], Any], *, unblock: Path | None = None) -> BaseException | None:
    """Run `call` in a thread; it must return or raise within SECONDS (a reader waiting on a FIFO never would).
    Returns what it raised. `unblock` is a FIFO opened for writing afterwards, so a blocked reader can end."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 -- handed to the test thread to assert on
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(SECONDS)
    if thread.is_alive() and unblock is not None:
        os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(SECONDS)
    assert outcome, "the reader blocked"
    return outcome[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# -- regular files only ---------------------------------------------------------------------------------------------
def test_special_files_are_refused_at_once(tmp_path: Path, fifo: Path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        for path, kind in [(fifo, "a FIFO (named pipe)"), (tmp_path, "a folder"),
                           (Path("/dev/zero"), "a character device"), (tmp_path / "sock", "a socket")]:
            error = finishes(lambda: read_bytes(path, what="config"), unblock=fifo)  # noqa: B023 -- run at once
            assert isinstance(error, InputError) and error.path == str(path)
            assert str(error) == f"The config {path} is {kind}, not a regular file; give the path of a file."
    finally:
        server.close()


def test_a_link_to_a_regular_file_is_read_and_the_caller_picks_the_error(tmp_path: Path, fifo: Path):
    (tmp_path / "real.json").write_text('{"a": [1, 2.5, null]}')
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    assert read_json(tmp_path / "link.json", what="config") == {"a": [1, 2.5, None]}
    with open_regular(tmp_path / "link.json", what="config") as f:
        assert f.read() == b'{"a": [1, 2.5, null]}'  # blocking again after the non-blocking open
    (tmp_path / "to_fifo").symlink_to(fifo)
    with pytest.raises(RecipeError, match="to_fifo is a FIFO"):
        read_yaml(tmp_path / "to_fifo", what="recipe", error=RecipeError)
    with pytest.raises(CatalogueError, match=r"Cannot read the catalogue .*missing\.json: No such file"):
        read_json(tmp_path / "missing.json", what="catalogue", error=CatalogueError)


def test_a_name_with_control_characters_stays_on_one_line(tmp_path: Path):
    odd = tmp_path / "two\nlines.json"
    odd.mkdir()
    with pytest.raises(InputError) as caught:
        read_json(odd, what="config")
    assert "two\\nlines.json is a folder" in str(caught.value) and caught.value.path == str(odd)
    with pytest.raises(InputError, match=r"^Cannot read the config .*\\x00: embedded null byte\.$"):
        read_bytes(f"{tmp_path}/\0", what="config")


def test_size_is_checked_before_reading(tmp_path: Path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(1 << 40)  # a sparse terabyte: reading it would take hours
    with pytest.raises(InputError, match=f"The list {big} has 1,099,511,627,776 bytes, more than the 1,000 allowed"):
        read_bytes(big, what="list", max_bytes=1000)
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe")
    with pytest.raises(InputError, match=r"bad.txt is not a UTF-8 text file \(byte 3: invalid start byte\)"):
        read_text(tmp_path / "bad.txt", what="list")


# -- JSON -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000 + "]" * 100_000, "nests lists and objects 100,000 deep, more than the 64 allowed"),
    ('{"a": ' * 65 + "1" + "}" * 65, "nests lists and objects 65 deep"),
    ("1" * 5000, "an integer of 5,000 digits (at most 40 are allowed)"),
    ('{"x": -' + "9" * 41 + "}", "an integer of 41 digits"),
    ("[NaN]", "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ("1e400", "the number '1e400' is too large to be represented"),
    ('{"a": 1, "a": 2}', "the key 'a' is given twice in one object"),
    ('{"a": [1, 2}', "is not valid JSON: Expecting ',' delimiter (line 1, column 12)"),
    ("", "is not valid JSON: Expecting value (line 1, column 1)"),
], ids=lambda v: shorten(v, 30))
def test_json_bounds(text: str, problem: str):
    with pytest.raises(InputError) as caught:
        parse_json(text, where="The config c.json", path="c.json")
    assert problem in str(caught.value) and str(caught.value).startswith("The config c.json ")
    assert caught.value.path == "c.json" and "\n" not in str(caught.value)


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"a": "[[[[{{{{" * 100, "b": ['\\"]]]'], "c": {"d": []}})
    assert nesting_depth(text) == 3
    assert parse_json(text, where="x")["c"] == {"d": []}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 30, 10 ** 30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30)


@given(json_values)
def test_property_json_within_the_bounds_reads_back(value: Any):
    assert parse_json(json.dumps(value), where="x") == value


@given(st.binary(max_size=2000) | st.text(alphabet='[]{}":,0123456789.eE+-NaInfity \\ux\n', max_size=2000)
       .map(str.encode))
def test_property_json_of_any_bytes_is_a_value_or_one_typed_error(data: bytes):
    value, error = bounded(lambda: parse_json(data, where="The config c.json", path="c.json"), size=len(data))
    if error is not None:
        assert isinstance(error, InputError) and str(error).startswith("The config c.json ")
        assert "\n" not in str(error) and len(str(error)) < 400


@settings(max_examples=10)
@given(st.integers(MAX_DEPTH + 1, 20_000), st.sampled_from(["[", '{"k":']))
def test_property_json_too_deep_is_refused_before_parsing(depth: int, opener: str):
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "0" + closer * depth
    _, error = bounded(lambda: parse_json(text, where="x"), size=len(text))
    assert isinstance(error, InputError) and f"{depth:,} deep" in str(error)


# -- YAML -----------------------------------------------------------------------------------------------------------
def billion_laughs(width: int, levels: int) -> str:
    """A YAML alias bomb: `levels` anchors, each a list of `width` aliases of the one before."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@given(st.integers(2, 12), st.integers(2, 12), st.sampled_from(["", "reference:\n  "]))
def test_property_yaml_alias_bombs_are_refused_before_expansion(width: int, levels: int, indent: str):
    text = indent + billion_laughs(width, levels).replace("\n", "\n" + " " * len(indent.split("\n")[-1]))
    _, error = bounded(lambda: parse_yaml(text, where="The recipe r.yaml"), size=len(text))
    assert isinstance(error, InputError) and "aliases (*l0) are not allowed" in str(error)


@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000, "nesting deeper than 64 levels (line 1, column 65)"),
    ("a: " + "7" * 5000, "an integer of 5,000 digits (at most 40 are allowed) (line 1, column 4)"),
    ("a: .inf", "'.inf' is not a finite number"),
    ("a: [.NaN]", "'.NaN' is not a finite number"),
    ("a: 2020-13-45", "month must be in 1..12"),
    ("a: !!python/object/apply:os.system [echo]", "could not determine a constructor for the tag"),
    ("a: b: c", "mapping values are not allowed here (line 1, column 5)"),
    ("a: !!binary " + "A" * 3, "failed to decode base64 data"),
    ("a: 1\n---\nb: 2", "expected a single document in the stream, but found another document"),
    ("a: !!" + "x" * 100_000, "could not determine a constructor for the tag"),
], ids=lambda v: shorten(v, 30))
def test_yaml_bounds(text: str, problem: str):
    with pytest.raises(InputError) as caught:
        parse_yaml(text, where="The recipe r.yaml", path="r.yaml")
    message = str(caught.value)
    assert problem in message and message.startswith("The recipe r.yaml is not valid YAML: ")
    assert "\n" not in message and len(message) < 400 and caught.value.path == "r.yaml"


@given(st.text(alphabet="[]{}:,-&*!|>'\"#?%@`. \n\tab01xyz.", max_size=300) | st.text(max_size=300))
def test_property_yaml_of_any_text_is_a_value_or_one_typed_error(text: str):
    _, error = bounded(lambda: parse_yaml(text, where="The recipe r.yaml"), size=len(text.encode()))
    if error is not None:
        assert isinstance(error, InputError) and str(error).startswith("The recipe r.yaml is not valid YAML: ")
        assert "\n" not in str(error) and len(str(error)) < 400


@settings(max_examples=15)
@given(st.binary(max_size=600))
def test_property_read_of_any_file_is_a_value_or_one_typed_error(tmp_path: Path, data: bytes):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "input"
    path.write_bytes(data)
    for read in (read_json, read_yaml):
        _, error = bounded(lambda: read(path, what="config", error=RecipeError), size=len(data))  # noqa: B023
        assert error is None or isinstance(error, RecipeError) and error.path == str(path)


def test_shorten_never_prints_a_huge_value():
    assert shorten("x" * 10 ** 6) == repr("x" * 76)[:77] + "..."
    assert shorten(10 ** 5000) == "an integer of about 5000 digits"
    assert shorten([[1]] * 10 ** 6) == "a list of 1000000 items"
    assert shorten([0.9, 0.1]) == "[0.9, 0.1]" and shorten(math.inf) == "inf"


# -- walks ----------------------------------------------------------------------------------------------------------
def test_a_link_back_up_adds_no_file(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    for name in ("a", "b", "b/c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"")
    (tmp_path / "b" / "up").symlink_to("..")
    (tmp_path / "b" / "c" / "top").symlink_to(tmp_path)
    (tmp_path / "b" / "c" / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "b" / "notes.txt").write_text("")
    found = list(walk_files(tmp_path, suffixes=[".JPG"]))
    assert found == [tmp_path / "a/x.jpg", tmp_path / "b/c/x.jpg", tmp_path / "b/x.jpg"]
    assert "skipped 2 links to a folder already walked" in caplog.text
    assert list(walk_files(tmp_path, limit=2)) == found[:2]


@settings(max_examples=25)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.integers(0, n - 1), min_size=n - 1, max_size=n - 1),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n)), max_size=8), st.lists(st.integers(0, n - 1)))))
def test_property_walks_end_and_yield_each_file_once(tmp_path: Path, graph: tuple[int, list[int], list, list[int]]):
    """Folders 1..n-1 hang under a parent among the earlier ones (a tree), links go from any folder to any folder
    (n: the walk's parent, outside it), and files sit in some folders."""
    n, parents, links, files = graph
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    folders = [root / "d0"]
    for i, parent in enumerate(parents[: n - 1], 1):
        folders.append(folders[min(parent, i - 1)] / f"d{i}")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for k, (source, target) in enumerate(links):
        (folders[source] / f"link{k}").symlink_to(folders[target] if target < n else root)
    for k, where in enumerate(files):
        (folders[where] / f"f{k}.png").write_bytes(b"")
    found, error = bounded(lambda: list(walk_files(folders[0])), size=1 << 16)
    assert error is None
    keys = [(p.stat().st_dev, p.stat().st_ino) for p in found]
    assert len(keys) == len(set(keys)) == len(files)  # each file once, and every file (all are in the tree)


# -- a FIFO given to each kind of reader: refused at once -----------------------------------------------------------
def test_a_fifo_as_a_recipe_or_catalogue_is_refused_at_once(fifo: Path, monkeypatch: pytest.MonkeyPatch):
    from ssld_zoo.catalogue import registry
    from ssld_zoo.train.recipe import load_recipe
    error = finishes(lambda: load_recipe(fifo), unblock=fifo)
    assert isinstance(error, RecipeError) and "is a FIFO (named pipe), not a regular file" in str(error)
    monkeypatch.setattr(registry, "_extra_catalogues", [])
    error = finishes(lambda: registry.add_catalogue(fifo), unblock=fifo)
    assert isinstance(error, CatalogueError) and f"The catalogue file {fifo} is a FIFO" in str(error)


def test_a_fifo_as_an_image_list_entry_or_labels_file_is_refused_at_once(tmp_path: Path, fifo: Path):
    from ssld_zoo.cli.predict import _read_image
    from ssld_zoo.tools.evaluate import read_labels
    from ssld_zoo.train.data import Files, open_source
    from ssld_zoo.train.recipe import DataSource
    error = finishes(lambda: _read_image(str(fifo)), unblock=fifo)
    assert isinstance(error, DataError) and f"The image {fifo} is a FIFO" in str(error)
    for read in (Files([fifo], [0]).image, Files([fifo], [0]).encoded):
        error = finishes(lambda: read(0), unblock=fifo)  # noqa: B023 -- run at once
        assert isinstance(error, DataError) and "is a FIFO" in str(error)
    (tmp_path / "list.txt").write_text("pipe 3\n")
    listed = open_source(DataSource(f"list:{tmp_path / 'list.txt'}"))
    assert listed.labels.tolist() == [3]
    error = finishes(lambda: listed.image(0), unblock=fifo)
    assert isinstance(error, DataError) and "is a FIFO" in str(error)
    error = finishes(lambda: read_labels(fifo), unblock=fifo)
    assert isinstance(error, DataError) and f"The labels file {fifo} is a FIFO" in str(error)



_OPENING = ("reading.py", "<frozen os>")  # the code that opens a file: open_regular and os.fdopen


def _tracer(on_line: Callable[[], None]) -> Callable[..., Any]:
    """A trace function that calls `on_line` at each line of `_OPENING`'s code."""
    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            on_line()
        return local

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.endswith(_OPENING) else None
    return on_call


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_ctrl_c_at_any_line_of_opening_a_file_stays_a_ctrl_c_and_leaks_nothing(tmp_path: Path):
    """Ctrl-C can land between any two lines: whichever one it lands on, `open_regular` lets the KeyboardInterrupt
    through unchanged (never an OSError that a caller would take for a bad file) and leaves no descriptor open."""
    path = tmp_path / "image.jpg"
    path.write_bytes(b"x" * 10)
    lines = 0

    def count() -> None:
        nonlocal lines
        lines += 1

    before = _open_fds()
    sys.settrace(_tracer(count))
    try:
        open_regular(path, what="image").close()
    finally:
        sys.settrace(None)
    assert lines > 5
    for at in range(1, lines + 1):
        seen = 0

        def interrupt_at_line(at: int = at) -> None:
            nonlocal seen
            seen += 1
            if seen == at:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            sys.settrace(_tracer(interrupt_at_line))
            try:
                open_regular(path, what="image").close()
            finally:
                sys.settrace(None)
        assert _open_fds() == before, f"a descriptor leaked when Ctrl-C landed on line {at} of {lines}"
