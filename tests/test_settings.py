"""`settings.env_number`: every numeric environment variable is a finite number in its range, or one line naming the
variable and the range."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssld_zoo.errors import SettingError
from ssld_zoo.settings import env_number

NAME = "SSLD_ZOO_TEST_NUMBER"
EXTREMES = ["inf", "-inf", "nan", "NaN", "1e400", "-1e400", "-0", "0", "-1", "1e-400", "9" * 5000, "0x10", "1_0",
            " ", "seconds", "\u0661", "1e3 s", "--1"]


def read(value: str, integer: bool) -> float:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NAME, value)
        if integer:
            return env_number(NAME, 7, minimum=1, maximum=1000, integer=True, unit=" items")
        return env_number(NAME, 7.5, minimum=0.001, maximum=1000.0, unit=" seconds")


def check(value: str, integer: bool) -> None:
    """In range and finite (a whole number when asked), the default when blank, or one `SettingError` line."""
    try:
        number = read(value, integer)
    except SettingError as e:
        message = str(e)
        assert e.key == NAME and message.startswith(f"{NAME}=") and "\n" not in message and len(message) < 300
        allowed = "a whole number from 1 to 1,000 items" if integer else "a number from 0.001 to 1,000 seconds"
        assert allowed in message
        return
    assert math.isfinite(number) and (type(number) is int if integer else isinstance(number, float))
    assert number == (7 if integer else 7.5) if not value.strip() else 0.001 <= number <= 1000


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("value", EXTREMES)
def test_numbers_at_their_extremes_are_one_line(value: str, integer: bool):
    check(value, integer)
    if value.strip():
        with pytest.raises(SettingError):
            read(value, integer)


def test_a_number_in_range_is_read():
    assert read(" 2.5 ", integer=False) == 2.5 and read("+12", integer=True) == 12 and read("1000", True) == 1000


@given(st.one_of(st.text(max_size=40), st.floats().map(repr), st.integers().map(str),
                 st.from_regex(r"-?[0-9]{30,6000}", fullmatch=True)), st.booleans())
def test_property_any_value_is_a_number_in_range_or_one_line(value: str, integer: bool):
    if "\x00" in value:  # the environment cannot hold NUL
        return
    check(value, integer)


VARIABLES = ("SSLD_ZOO_HUB_DEADLINE_S", "SSLD_ZOO_DOWNLOAD_DEADLINE_S", "SSLD_ZOO_DOWNLOAD_MAX_BYTES", "WORLD_SIZE",
             "RANK", "LOCAL_RANK")  # every numeric environment variable ssld_zoo reads
EXTREME_SETTINGS = [(variable, value) for variable in VARIABLES
                    for value in ("inf", "nan", "1e400", "9" * 400, "-1")] + [
    (variable, "-0") for variable in ("SSLD_ZOO_HUB_DEADLINE_S", "SSLD_ZOO_DOWNLOAD_DEADLINE_S", "WORLD_SIZE")]


@pytest.mark.parametrize("variable, value", EXTREME_SETTINGS)
def test_every_numeric_variable_the_project_reads_refuses_extremes(monkeypatch, variable: str, value: str):
    from ssld_zoo.weights import download, hub
    readers = {"SSLD_ZOO_HUB_DEADLINE_S": hub.deadline_s, "SSLD_ZOO_DOWNLOAD_DEADLINE_S": download.deadline_s,
               "SSLD_ZOO_DOWNLOAD_MAX_BYTES": download.max_bytes}
    monkeypatch.setenv(variable, value)
    if variable in readers:
        with pytest.raises(SettingError, match=f"^{variable}="):
            readers[variable]()
    else:
        from ssld_zoo.train.distributed import setup
        monkeypatch.setenv("WORLD_SIZE", value if variable == "WORLD_SIZE" else "1")
        with pytest.raises(SettingError, match=f"^{variable}="):
            setup("cpu")
