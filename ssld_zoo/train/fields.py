"""Reading a nested mapping (parsed YAML) into frozen dataclasses, driven by their fields and type hints alone.

Each field is stated once, in its dataclass; its type hint says what the mapping may hold there:

    bool, int, float (ints and YAML 1.1's `1e-4` strings accepted, always finite), str (non-empty), Literal[...],
    Enum, X | None, unions tried in order, tuple[X, ...], tuple[X, Y], list[X], dict[str, X], Any, a nested
    dataclass (a mapping of its own fields)

and `Annotated[...]` adds the checks a type cannot say: `Range` (number bounds), `OneOf` (allowed values),
`Valid` (a predicate with its description) and `ReadWith` (a reader for a field written in several forms).
A missing key, or a null one where the type has no None, takes the field's default; unknown keys are refused.
Every error is one line naming the file and the dotted key. Rules that span several fields stay with the caller.
"""
from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Callable, Iterable, Literal, Mapping, TypeVar, Union, get_args, get_origin, \
    get_type_hints

from ssld_zoo.errors import RecipeError, SsldZooError
from ssld_zoo.reading import shorten

T = TypeVar("T")
INT64_MAX = 2 ** 63 - 1  # every integer ends up in numpy or torch
_FLOAT_TEXT = re.compile(r"^[+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")  # YAML 1.1 reads 1e-4 (no '.') as a string


@dataclass(frozen=True)
class Range:
    """Bounds of a number: `min`/`max` inclusive, `above`/`below` exclusive."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

    def holds(self, value: float) -> bool:
        return ((self.min is None or value >= self.min) and (self.max is None or value <= self.max)
                and (self.above is None or value > self.above) and (self.below is None or value < self.below))


@dataclass(frozen=True)
class OneOf:
    """The values a field may take."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Valid:
    """A check of the read value, and what a valid value looks like (`must be {hint}`)."""

    check: Callable[[Any], Any]
    hint: str


@dataclass(frozen=True)
class ReadWith:
    """A field written in several forms: `read(reader, raw value, dotted key)` returns the field's value."""

    read: Callable[["FieldReader", Any, str], Any]


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=True)


def _split(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """(the type, its Annotated markers)."""
    if get_origin(hint) is Annotated:
        base, *markers = get_args(hint)
        return base, tuple(markers)
    return hint, ()


def _options(hint: Any) -> tuple[Any, ...] | None:
    """The members of a union type, or None."""
    return get_args(hint) if get_origin(hint) in (Union, types.UnionType) else None


def _allows_none(hint: Any) -> bool:
    options = _options(_split(hint)[0])
    return hint is Any or (options is not None and type(None) in options)


def describe(hint: Any) -> str:
    """What a value of `hint` looks like, for error messages ("a positive integer", "one of a, b")."""
    base, markers = _split(hint)
    for marker in markers:
        if isinstance(marker, OneOf):
            return "one of " + ", ".join("null" if v is None else str(v) for v in marker.values)
        if isinstance(marker, Valid):
            return marker.hint
    bounds = next((m for m in markers if isinstance(m, Range)), None)
    options = _options(base)
    if options is not None:
        return " or ".join(describe(Annotated[(o, *markers)] if markers else o) if o is not type(None) else "null"
                           for o in options)
    if base is bool:
        return "true or false"
    if base in (int, float):
        noun = "an integer" if base is int else "a number"
        if bounds is None:
            return noun
        if bounds in (Range(min=1), Range(above=0)):
            return f"a positive {noun.split()[1]}"
        if bounds == Range(min=0):
            return f"a non-negative {noun.split()[1]}"
        if bounds.min is not None and bounds.max is not None:
            return f"{noun} from {_number(bounds.min)} to {_number(bounds.max)}"
        limits = (("at least", bounds.min), ("above", bounds.above), ("at most", bounds.max), ("below", bounds.below))
        return f"{noun} " + " and ".join(f"{word} {_number(limit)}" for word, limit in limits if limit is not None)
    if base is str:
        return "a non-empty string"
    origin, args = get_origin(base), get_args(base)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in base)
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)}: [{', '.join(describe(a) for a in args)}]"
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin is dict or base is dict:
        return "a mapping"
    if dataclasses.is_dataclass(base):
        return f"a mapping of {', '.join(f.name for f in dataclasses.fields(base) if f.init)}"
    return "a value"


class FieldReader:
    """Reads mappings into dataclasses; every problem is `error` (default `RecipeError`) naming `where` and the key."""

    def __init__(self, where: str, error: type[SsldZooError] = RecipeError) -> None:
        self.where, self.error = where, error

    def fail(self, key: str, what: str) -> SsldZooError:
        return self.error(f"{self.where}: `{key}` {what}.", key=key)

    def read(self, cls: type[T], node: Any, key: str = "", *, given: Mapping[str, Any] | None = None,
             defaults: Mapping[str, Any] | None = None, allow: Iterable[str] = ()) -> T:
        """An instance of dataclass `cls` from mapping `node` (at dotted `key`). `given` fields are set by the caller
        and not read; `defaults` replace the dataclass's own defaults; `allow` names extra keys that are ignored."""
        given, defaults = dict(given or {}), dict(defaults or {})
        where = key or "the recipe"
        if not isinstance(node, dict):
            raise self.fail(where, f"must be {describe(cls)}, not {shorten(node)}")
        fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in given]  # type: ignore[arg-type]
        known = {f.name for f in fields} | set(allow)
        unknown = sorted((k for k in node if k not in known), key=str)
        if unknown:
            raise self.fail(_join(key, unknown[0]), f"is not a recipe key (known here: {', '.join(sorted(known))})")
        values = dict(given)
        hints = _hints(cls)  # type: ignore[arg-type]
        for f in fields:
            sub = _join(key, f.name)
            has_default = f.name in defaults or f.default is not dataclasses.MISSING \
                or f.default_factory is not dataclasses.MISSING
            raw = node.get(f.name)
            if raw is None and (f.name not in node or not _allows_none(hints[f.name])):
                if f.name in defaults:
                    values[f.name] = defaults[f.name]
                elif not has_default:
                    raise self.fail(sub, f"is missing: give {describe(hints[f.name])}")
                continue
            values[f.name] = self.value(hints[f.name], raw, sub)
        return cls(**values)

    def value(self, hint: Any, raw: Any, key: str) -> Any:
        """`raw` read as a value of type `hint` (at dotted `key`)."""
        base, markers = _split(hint)
        reader = next((m for m in markers if isinstance(m, ReadWith)), None)
        if reader is not None:
            return reader.read(self, raw, key)
        options = _options(base)
        if options is not None:  # Annotated[X | None, m] reads as Annotated[X, m] | None
            return self._union(tuple(o if o is type(None) or not markers else Annotated[(o, *markers)]
                                     for o in options), raw, key, hint)
        value = self._plain(base, raw, key, hint)
        for marker in markers:
            if (isinstance(marker, Range) and not marker.holds(value)
                    or isinstance(marker, OneOf) and value not in marker.values
                    or isinstance(marker, Valid) and not marker.check(value)):
                raise self.fail(key, f"must be {describe(hint)}, not {shorten(raw)}")
        return value

    def _union(self, options: tuple[Any, ...], raw: Any, key: str, hint: Any) -> Any:
        if raw is None and type(None) in options:
            return None
        present = [o for o in options if o is not type(None)]
        if len(present) == 1:  # X | None: X's own error, which may name a key inside it
            return self.value(present[0], raw, key)
        for option in present:
            try:
                return self.value(option, raw, key)
            except SsldZooError:
                continue
        raise self.fail(key, f"must be {describe(hint)}, not {shorten(raw)}")

    def _plain(self, base: Any, raw: Any, key: str, hint: Any) -> Any:
        """`raw` as `base` (no markers); a mismatch names `hint`, the whole field type."""
        def wrong() -> SsldZooError:
            return self.fail(key, f"must be {describe(hint)}, not {shorten(raw)}")

        origin, args = get_origin(base), get_args(base)
        if base is Any:
            return raw
        if base is bool:
            if not isinstance(raw, bool):
                raise wrong()
            return raw
        if base is int:
            if not isinstance(raw, int) or isinstance(raw, bool) or not -INT64_MAX <= raw <= INT64_MAX:
                raise wrong()
            return raw
        if base is float:
            return self._number(raw, wrong)
        if base is str:
            if not isinstance(raw, str) or not raw:
                raise wrong()
            return raw
        if origin is Literal:
            if raw not in args:
                raise wrong()
            return raw
        if isinstance(base, type) and issubclass(base, enum.Enum):
            try:
                return base(raw)
            except ValueError as e:
                raise wrong() from e
        if dataclasses.is_dataclass(base):
            return self.read(base, raw, key)  # type: ignore[arg-type]
        if origin in (tuple, list):
            if not isinstance(raw, list):
                raise wrong()
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(raw) != len(args):
                    raise wrong()
                return tuple(self.value(a, v, f"{key}.{i}") for i, (a, v) in enumerate(zip(args, raw)))
            item = args[0] if args else Any
            items = [self.value(item, v, f"{key}.{i}") for i, v in enumerate(raw)]
            return tuple(items) if origin is tuple else items
        if origin is dict or base is dict:
            if not isinstance(raw, dict):
                raise wrong()
            if args and args[0] is str and not all(isinstance(k, str) for k in raw):
                raise self.fail(key, f"must be a mapping with string keys, not {shorten(raw)}")
            item = args[1] if args else Any
            return {k: self.value(item, v, _join(key, str(k))) for k, v in raw.items()}
        raise TypeError(f"{key}: the recipe reader does not know the type {base!r}")

    @staticmethod
    def _number(raw: Any, wrong: Callable[[], SsldZooError]) -> float:
        if isinstance(raw, str) and _FLOAT_TEXT.match(raw):
            raw = float(raw)
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            raise wrong()
        try:
            value = float(raw)
        except OverflowError as e:
            raise wrong() from e
        if not math.isfinite(value):
            raise wrong()
        return value


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
