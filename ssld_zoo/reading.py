"""Reading input files: regular files only, never waited on, bounded in size, nesting depth and number length.

Every file the project reads from a user (recipes, overrides, catalogues, configs, labels and list files, images)
comes through here, so that no input can hang a command or flood its memory, and every bad one is one line:

- `open_regular` opens without blocking and refuses anything that is not a regular file (a FIFO, a device, a
  socket, a folder), naming the path and what it should have been.
- `read_bytes` / `read_text` refuse a file larger than the caller's bound before reading it.
- `parse_json` / `read_json` bound the nesting depth (checked before the parser recurses), the digits of an integer
  and refuse NaN/Infinity, duplicate keys and text that is not UTF-8.
- `parse_yaml` / `read_yaml` use PyYAML's safe loader and refuse aliases (so an alias bomb is never expanded) and
  nesting deeper than a bound, before the document is built.
- `walk_files` walks a folder tree following folder links at most once: each folder is keyed by (device, inode),
  and a link back to a folder already walked (a loop) is skipped and counted, never followed.

The caller picks the error class (`error=`), so a recipe stays a `RecipeError` and a catalogue a `CatalogueError`;
the default is `InputError`. A foundation module: imports neither numpy nor torch (PyYAML only when YAML is read).
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import stat
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ssld_zoo.errors import InputError, SsldZooError

log = logging.getLogger(__name__)

MAX_DEPTH = 64  # nesting of JSON/YAML mappings and lists; the project's deepest file (the catalogue) uses 6
MAX_INT_DIGITS = 40  # an integer longer than this is a typo or an attack (int64 has 19 digits)
MAX_CONFIG_BYTES = 16 << 20  # a catalogue, config.json or manifest: far above any real one
MAX_LIST_BYTES = 512 << 20  # a list or labels file (ImageNet-22k's 14M paths fit)
MAX_IMAGE_BYTES = 256 << 20  # one image file (the decoder bounds its pixels separately)
MAX_SHOWN = 80  # characters of a value quoted in an error message
_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # escapes of UTF-16 surrogates

ErrorType = type[SsldZooError]
_KIND = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def shorten(value: Any, limit: int = MAX_SHOWN) -> str:
    """`repr(value)` cut to about `limit` characters, for error messages (a huge value never reaches one).
    Containers are described, not printed, so a deep or shared structure is never walked."""
    if isinstance(value, (list, tuple)) and len(value) <= 8 and all(
            v is None or isinstance(v, (bool, float)) or type(v) is int and v.bit_length() <= 64
            or isinstance(v, str) and len(v) <= limit for v in value):
        return clip(repr(value), limit)
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return clip(repr(value) if not isinstance(value, str) or len(value) <= 4 * limit else repr(value[: 4 * limit]),
                limit)


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` itself when short, else its first `limit` characters and "..." (for quoting user text in messages);
    control characters (a newline) are escaped, so the message stays one line."""
    text = text if text.isprintable() else text[: 4 * limit].encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(name: str) -> str:
    """A file name as a message shows it: whole unless very long, on one line."""
    return clip(name, 4 * MAX_SHOWN)


def _kind(mode: int) -> str:
    return _KIND.get(stat.S_IFMT(mode), "not a regular file")


def _mode(name: str) -> int | None:
    try:
        return os.stat(name).st_mode
    except (OSError, ValueError):
        return None


def open_regular(path: str | os.PathLike, *, what: str, error: ErrorType = InputError) -> BinaryIO:
    """`path` opened for binary reading, if it is a regular file (a link to one is followed). A FIFO, device, socket
    or folder is refused at once, never waited on: the file is opened non-blocking and checked with `fstat`.

    A Ctrl-C that lands anywhere in here leaves as it came and leaks no descriptor: the descriptor is closed here
    until the file object that owns it exists, and never twice (a second close would fail with an `OSError` that a
    caller may take for a bad file, losing the interrupt)."""
    name = os.fspath(path)
    fd, file = -1, None
    try:
        fd = _open_descriptor(name, what, error)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"The {what} {_shown(name)} is {_kind(mode)}, not a regular file; give the path of a file.",
                        path=name)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        file = io.open(fd, "rb")  # C code: no Python line runs between the object's making and this assignment
    except BaseException:
        if file is None and fd >= 0:
            os.close(fd)
        raise
    return file


def _open_descriptor(name: str, what: str, error: ErrorType) -> int:
    """`os.open` of `name` for reading, non-blocking; its failure as one `error`."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(name, flags | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as e:  # ValueError: a NUL character in the name
        mode = _mode(name)
        if mode is not None and not stat.S_ISREG(mode):  # a socket cannot even be opened
            raise error(f"The {what} {_shown(name)} is {_kind(mode)}, not a regular file; give the path of a file.",
                        path=name) from e
        reason = getattr(e, "strerror", None) or e
        raise error(f"Cannot read the {what} {_shown(name)}: {reason}.", path=name) from e


def read_bytes(path: str | os.PathLike, *, what: str, max_bytes: int = MAX_CONFIG_BYTES,
               error: ErrorType = InputError) -> bytes:
    """The bytes of the regular file `path`; a file larger than `max_bytes` is refused before it is read."""
    name = os.fspath(path)
    with open_regular(name, what=what, error=error) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise error(f"The {what} {_shown(name)} has {size:,} bytes, more than the {max_bytes:,} allowed; is it "
                        "the right file?", path=name)
        try:
            data = f.read(size + 1)  # one byte more shows a file that grew since `fstat`
            if len(data) > size:
                data += f.read(max_bytes + 1 - len(data))
        except OSError as e:
            raise error(f"Cannot read the {what} {_shown(name)}: {e.strerror or e}.", path=name) from e
    if len(data) > max_bytes:  # it grew while being read
        raise error(f"The {what} {_shown(name)} has more than the {max_bytes:,} bytes allowed; is it the right file?",
                    path=name)
    return data


def decode_utf8(data: bytes, *, where: str, path: str | None = None, error: ErrorType = InputError) -> str:
    """`data` decoded as strict UTF-8 (a leading byte-order mark is dropped); anything else is one line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{where} is not a UTF-8 text file (byte {e.start:,}: {e.reason}); save it as UTF-8.",
                    path=path) from e


def read_text(path: str | os.PathLike, *, what: str, max_bytes: int = MAX_CONFIG_BYTES,
              error: ErrorType = InputError) -> str:
    """The UTF-8 text of the regular file `path`, bounded by `max_bytes`."""
    name = os.fspath(path)
    return decode_utf8(read_bytes(name, what=what, max_bytes=max_bytes, error=error),
                       where=f"The {what} {_shown(name)}", path=name, error=error)


class _Refused(ValueError):
    """A value the bounded parsers refuse, carried out of the parser to be reported with its position."""


def nesting_depth(text: str) -> int:
    """How deeply the lists and objects of JSON `text` nest, counted without parsing (strings are skipped)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _json_int(max_digits: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > max_digits:
            raise _Refused(f"an integer of {len(text.lstrip('-')):,} digits (at most {max_digits} are allowed)")
        return int(text)
    return parse


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {shorten(text)} is too large to be represented")
    return value


def _json_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number (write a finite number or null)")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {shorten(key)} is given twice in one object")
        out[key] = value
    return out


def parse_json(data: bytes | str, *, where: str, path: str | None = None, max_depth: int = MAX_DEPTH,
               max_int_digits: int = MAX_INT_DIGITS, error: ErrorType = InputError) -> Any:
    """JSON `data` as Python values, or one `error` line starting with `where` (e.g. "The catalogue x.json").

    Refused: text that is not UTF-8, nesting deeper than `max_depth` (checked before parsing, so the parser never
    recurses deeply), integers longer than `max_int_digits`, NaN/Infinity, numbers that overflow, duplicate keys."""
    text = decode_utf8(data, where=where, path=path, error=error) if isinstance(data, bytes) else data
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{where} nests lists and objects {depth:,} deep, more than the {max_depth} allowed.", path=path)
    try:
        value = json.loads(text, parse_int=_json_int(max_int_digits), parse_float=_json_float,
                           parse_constant=_json_constant, object_pairs_hook=_json_object)
    except json.JSONDecodeError as e:
        raise error(f"{where} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).", path=path) from e
    except (_Refused, RecursionError) as e:
        raise error(f"{where} is refused: {e}.", path=path) from e
    if _LONE_SURROGATE.search(text):  # a \ud800-style escape may decode to half a character, which is not text
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise error(f"{where} is refused: a \\u escape in it is half of a UTF-16 pair ({e.object[e.start]!a}), "
                        "not a character.", path=path) from e
    return value


def read_json(path: str | os.PathLike, *, what: str, max_bytes: int = MAX_CONFIG_BYTES, max_depth: int = MAX_DEPTH,
              error: ErrorType = InputError) -> Any:
    """The JSON file `path` (a regular file of at most `max_bytes`), parsed with `parse_json`'s bounds."""
    name = os.fspath(path)
    return parse_json(read_bytes(name, what=what, max_bytes=max_bytes, error=error), where=f"The {what} {_shown(name)}",
                      path=name, max_depth=max_depth, error=error)


@lru_cache(maxsize=None)
def _yaml_loader(max_depth: int, max_int_digits: int) -> type:
    """A PyYAML safe loader that refuses aliases (before anything is expanded), nesting deeper than `max_depth`,
    integers longer than `max_int_digits` and numbers that are not finite."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.MarkedYAMLError(problem=f"aliases (*{event.anchor[:40]}) are not allowed; "
                                                   "write the value out", problem_mark=event.start_mark)
            self.depth += 1
            try:
                if self.depth > max_depth:
                    raise yaml.MarkedYAMLError(problem=f"nesting deeper than {max_depth} levels",
                                               problem_mark=self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_yaml_int(self, node: Any) -> Any:
            digits = sum(c.isdigit() for c in str(node.value))
            if digits > max_int_digits:
                raise yaml.MarkedYAMLError(problem=f"an integer of {digits:,} digits (at most {max_int_digits} are "
                                                   "allowed)", problem_mark=node.start_mark)
            return super().construct_yaml_int(node)

        def construct_yaml_float(self, node: Any) -> Any:
            value = super().construct_yaml_float(node)
            if not math.isfinite(value):
                raise yaml.MarkedYAMLError(problem=f"{shorten(node.value)} is not a finite number",
                                           problem_mark=node.start_mark)
            return value

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    BoundedLoader.add_constructor("tag:yaml.org,2002:float", BoundedLoader.construct_yaml_float)
    return BoundedLoader


def yaml_problem(e: BaseException) -> str:
    """A YAML error in one short line: what is wrong and where (PyYAML's own text spans several lines and may quote
    the input at length)."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    text = str(problem) if problem else " ".join(str(e).split()) or type(e).__name__
    context = getattr(e, "context", None)
    if problem and context and text.startswith("but "):  # "expected a single document ..., but found another"
        text = f"{context}, {text}"
    text = clip(text, 2 * MAX_SHOWN)
    return f"{text} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else text


def parse_yaml(text: str, *, where: str, path: str | None = None, max_depth: int = MAX_DEPTH,
               max_int_digits: int = MAX_INT_DIGITS, max_chars: int = MAX_CONFIG_BYTES,
               error: ErrorType = InputError) -> Any:
    """One YAML document as Python values (PyYAML's safe types), or one `error` line starting with `where`.

    Refused before anything is built: aliases (`*name`, so no alias bomb is ever expanded), nesting deeper than
    `max_depth`, more than `max_chars` characters; while building: integers longer than `max_int_digits`, numbers
    that are not finite, and any value PyYAML cannot construct (a bad date, an unknown tag)."""
    import yaml
    if len(text) > max_chars:
        raise error(f"{where} has {len(text):,} characters, more than the {max_chars:,} allowed.", path=path)
    try:
        loader = _yaml_loader(max_depth, max_int_digits)(text)  # refuses control characters at once
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:
        raise error(f"{where} is not valid YAML: {yaml_problem(e)}.", path=path) from e


def read_yaml(path: str | os.PathLike, *, what: str, max_bytes: int = MAX_CONFIG_BYTES,
              error: ErrorType = InputError) -> Any:
    """The YAML file `path` (a regular UTF-8 file of at most `max_bytes`), parsed with `parse_yaml`'s bounds."""
    name = os.fspath(path)
    return parse_yaml(read_text(name, what=what, max_bytes=max_bytes, error=error), where=f"The {what} {_shown(name)}",
                      path=name, error=error)


def _folder_key(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def walk_files(root: str | os.PathLike, *, suffixes: Iterable[str] | None = None, limit: int | None = None,
               visited: set[tuple[int, int]] | None = None, what: str = "folder",
               error: ErrorType = InputError) -> Iterator[Path]:
    """Every regular file under `root` (links to folders and files followed), in the order `sorted()` gives paths.

    Each folder is walked at most once: folders are keyed by (device, inode), and a link to one already walked
    (a loop, or a second way into the same folder) is skipped and counted, with one warning at the end. Pass one
    `visited` set to several walks to share it (a class folder linked into another is then walked once).
    `suffixes` keeps files whose lower-cased suffix is listed; `limit` stops the walk after that many files.
    A folder that cannot be read is an error (its files would silently be missing)."""
    wanted = None if suffixes is None else {s.lower() for s in suffixes}
    seen = set() if visited is None else visited
    start = _folder_key(root)
    if start is None:
        raise error(f"The {what} {os.fspath(root)} is not a folder.", path=os.fspath(root))
    skipped = 0 if start not in seen else 1
    seen.add(start)
    stack = [] if skipped else [_listing(Path(root), what, error)]
    found = 0
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        path, is_dir = entry
        if is_dir:
            key = _folder_key(path)
            if key is not None and key in seen:
                skipped += 1
            elif key is not None:
                seen.add(key)
                stack.append(_listing(path, what, error))
        elif (wanted is None or path.suffix.lower() in wanted) and path.is_file():
            yield path
            found += 1
            if limit is not None and found >= limit:
                break
    if skipped:
        log.warning("%s: skipped %d link%s to a folder already walked (a loop or a second way in); each folder is "
                    "read once.", os.fspath(root), skipped, "s" * (skipped != 1))


def _listing(folder: Path, what: str, error: ErrorType) -> Iterator[tuple[Path, bool]]:
    """(path, is a folder) for each entry of `folder`, sorted by name; an unreadable folder is an error."""
    try:
        with os.scandir(folder) as entries:
            names = sorted((entry.name, entry.is_dir()) for entry in entries)
    except OSError as e:
        raise error(f"Cannot read the folder {folder} ({e.strerror or e}): its files would be left out. Fix its "
                    f"permissions, or move it out of the {what}.", path=str(folder)) from e
    return iter([(folder / name, is_dir) for name, is_dir in names])
