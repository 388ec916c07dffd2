"""The library reports through `logging` ("ssld_zoo" and its children) and draws progress bars only where an
application lets it: silenced by the logger level, nothing reaches the terminal; the CLI shows the records as it always
printed them.

The terminal here is a real pseudo-terminal (`os.openpty`), so tqdm and `isatty()` behave as they do for a user.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import struct
import sys
import termios
import threading
from pathlib import Path
from typing import Iterator

import pytest
from train_support import TinyData, base_recipe

from ssld_zoo.reporting import PROGRESS_ENV, ROOT_LOGGER, progress_bars, to_stderr
from ssld_zoo.train import train
from ssld_zoo.train.recipe import parse_recipe


class Terminal:
    """A pseudo-terminal: `file` is its writing end (a tty), `text()` what has reached the screen so far."""

    def __init__(self) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows of 100 columns
        self.file = io.TextIOWrapper(os.fdopen(slave, "wb", buffering=0), encoding="utf-8", write_through=True)
        self._master, self._chunks = master, []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # the writing end is closed
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def close(self) -> str:
        self.file.close()
        self._reader.join(timeout=10)
        os.close(self._master)
        return b"".join(self._chunks).decode("utf-8", "replace")


@contextlib.contextmanager
def terminal_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term.file)
    yield term


@pytest.fixture
def library_logger() -> Iterator[logging.Logger]:
    """The "ssld_zoo" logger, its level and handlers put back afterwards."""
    logger = logging.getLogger(ROOT_LOGGER)
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_progress_bars_follow_the_terminal_the_logger_level_and_the_environment(monkeypatch, library_logger):
    engine = logging.getLogger("ssld_zoo.train.engine")
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert not progress_bars(engine)  # pytest's captured stderr is no terminal
    assert progress_bars(engine, progress=True)  # the caller's choice wins
    with terminal_stderr(monkeypatch) as term:
        assert progress_bars(engine) and not progress_bars(engine, progress=False)
        library_logger.setLevel(logging.WARNING)  # the application silences the library
        assert not progress_bars(engine)
        monkeypatch.setattr(engine, "level", logging.DEBUG)  # ... but wants this one module's bars
        assert progress_bars(engine)
        monkeypatch.setattr(engine, "level", logging.NOTSET)
        library_logger.setLevel(logging.INFO)
        assert progress_bars(engine)
        monkeypatch.setenv(PROGRESS_ENV, "0")
        assert not progress_bars(engine)
    term.close()


def _train_on_a_terminal(tmp_path: Path, tiny_data: TinyData, monkeypatch: pytest.MonkeyPatch) -> str:
    """Train the tiny recipe with stderr on a terminal, the application's own logging shown there; the screen."""
    raw = base_recipe(tiny_data, runtime={"workers": 0, "log_every": 1})
    raw["stages"][0]["epochs"] = 1
    root = logging.getLogger()
    with terminal_stderr(monkeypatch) as term:
        handler = logging.StreamHandler(term.file)  # what logging.basicConfig(level=INFO) sets up
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        monkeypatch.setattr(root, "level", logging.INFO)
        root.addHandler(handler)
        try:
            train(parse_recipe(raw), tmp_path, device="cpu")
        finally:
            root.removeHandler(handler)
    return term.close()


def test_an_application_routes_the_librarys_reports_or_silences_them(tmp_path, tiny_data, monkeypatch, capfd,
                                                                     library_logger):
    shown = _train_on_a_terminal(tmp_path / "shown", tiny_data, monkeypatch)
    assert "INFO:ssld_zoo.train.engine:stage 'stage1' (1/1)" in shown  # through the application's handler
    assert "step/s" in shown or "s/step" in shown  # tqdm's bar, on the terminal
    library_logger.setLevel(logging.WARNING)
    silent = _train_on_a_terminal(tmp_path / "silent", tiny_data, monkeypatch)
    assert silent == ""
    assert capfd.readouterr() == ("", "")
    assert (tmp_path / "silent" / "tiny_student" / "model.safetensors").is_file()  # it did train


def test_the_command_line_shows_each_modules_records_in_its_own_form(capsys, library_logger):
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)  # an application's handler: the CLI's lines do not reach it twice
    try:
        with to_stderr():
            logging.getLogger("ssld_zoo.train.engine").info("stage 'a' (1/2): %d images", 8)
            logging.getLogger("ssld_zoo.tools.mine").info("10/20 pool images")
            logging.getLogger("ssld_zoo.tools.mining.outputs").info("a module of the mining package")
            logging.getLogger("ssld_zoo.train.demo").warning("this machine is busy")
            logging.getLogger("ssld_zoo.weights.hub").warning("the Hub is slow")
            logging.getLogger("ssld_zoo.weights.hub").debug("not shown")
    finally:
        logging.getLogger().removeHandler(keep)
    assert capsys.readouterr() == ("", "[ssld_zoo.train] stage 'a' (1/2): 8 images\n"
                                       "[ssld-zoo mine] 10/20 pool images\n"
                                       "[ssld-zoo mine] a module of the mining package\n"
                                       "[ssld-zoo demo] warning: this machine is busy\n"
                                       "ssld-zoo: warning: the Hub is slow\n")
    assert seen == []
    assert library_logger.level == logging.NOTSET and library_logger.propagate and not library_logger.handlers
