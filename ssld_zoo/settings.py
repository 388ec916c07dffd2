"""Numbers read from environment variables, each checked against its allowed range in one place.

Every numeric environment variable the project reads (`SSLD_ZOO_HUB_DEADLINE_S`, `SSLD_ZOO_DOWNLOAD_DEADLINE_S`,
`SSLD_ZOO_DOWNLOAD_MAX_BYTES`, torchrun's `WORLD_SIZE` / `RANK` / `LOCAL_RANK`) goes through `env_number`: a value
that is not a number, or is NaN, infinite, out of range (`1e400`, `-0`, a 5,000-digit integer) or a fraction where a
whole number is needed, is one `SettingError` naming the variable and the range it must fall in. An unset or empty
variable gives the default. A foundation module: imports nothing of the package but its errors.
"""
from __future__ import annotations

import math
import os
import re
from typing import overload

from ssld_zoo.errors import SettingError

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")  # more digits than any allowed range needs: refused before int() runs
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # ASCII only: no '1_0', no other digits
_MAX_SHOWN = 40  # characters of a bad value quoted in the error


@overload
def env_number(name: str, default: int, *, minimum: int, maximum: int, integer: bool = ...,
               unit: str = ...) -> int: ...
@overload
def env_number(name: str, default: float, *, minimum: float, maximum: float, integer: bool = ...,
               unit: str = ...) -> float: ...
def env_number(name: str, default: float, *, minimum: float, maximum: float, integer: bool = False,
               unit: str = "") -> float:
    """The value of environment variable `name` (`default` when unset or empty), which must lie in
    `[minimum, maximum]` and be finite (a whole number when `integer`); anything else is a `SettingError`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    value = _parse(text, integer)
    if value is None or not minimum <= value <= maximum:
        kind = "a whole number" if integer else "a number"
        shown = text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"
        raise SettingError(f"{name}={shown!r} is not {kind} from {_format(minimum)} to {_format(maximum)}{unit}; "
                           f"set it in that range, or unset it for the default ({_format(default)}).", key=name)
    return value


def _parse(text: str, integer: bool) -> float | None:
    """`text` as a finite int (`integer`) or float, or None when it is not one."""
    if integer:
        return int(text) if _INTEGER.fullmatch(text) else None
    value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    return value if math.isfinite(value) else None


def _format(number: float) -> str:
    return f"{int(number):,}" if float(number).is_integer() else f"{number:g}"
