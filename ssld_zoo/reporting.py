"""How the library reports what it is doing: `logging` records under the "ssld_zoo" logger (one child per module,
`logging.getLogger(__name__)`), and tqdm progress bars that an application can turn off.

The library adds no handler: an application shows the records the way it shows its own (`logging.basicConfig`,
...), and silences them with `logging.getLogger("ssld_zoo").setLevel(logging.WARNING)`, which turns the progress
bars off too. `SSLD_ZOO_PROGRESS_BARS=0` turns the bars off alone. The `ssld-zoo` command (`console.run_parsed`)
shows the records on stderr with `to_stderr()`, each line the way the command has always printed it.

A foundation module: it imports nothing of the package.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

ROOT_LOGGER = "ssld_zoo"
PROGRESS_ENV = "SSLD_ZOO_PROGRESS_BARS"  # "0": no progress bar, whatever else is set

# The tag each module's (or package's) lines start with on the command line: what they printed before they logged.
_CLI_TAGS = {"ssld_zoo.train.engine": "[ssld_zoo.train]", "ssld_zoo.train.cache": "[ssld_zoo.cache]",
             "ssld_zoo.tools.mine": "[ssld-zoo mine]", "ssld_zoo.tools.mining": "[ssld-zoo mine]",
             "ssld_zoo.train.demo": "[ssld-zoo demo]"}


def _cli_tag(logger_name: str) -> str | None:
    """The tag of the logger or of the nearest package above it that has one."""
    parts = logger_name.split(".")
    return next((_CLI_TAGS[".".join(parts[:n])] for n in range(len(parts), 0, -1)
                 if ".".join(parts[:n]) in _CLI_TAGS), None)


def progress_bars(logger: logging.Logger, progress: bool | None = None) -> bool:
    """Whether work reported by `logger` draws a tqdm bar: `progress` when the caller chose; otherwise when stderr is
    a terminal, `SSLD_ZOO_PROGRESS_BARS` is not "0", and no logger from `logger` up to "ssld_zoo" is disabled or set
    to a level above INFO."""
    if progress is not None:
        return progress
    if os.environ.get(PROGRESS_ENV, "").strip() == "0" or not sys.stderr.isatty():
        return False
    node: logging.Logger | None = logger
    while node is not None and (node.name == ROOT_LOGGER or node.name.startswith(ROOT_LOGGER + ".")):
        if node.disabled or node.level > logging.INFO:
            return False
        if node.level != logging.NOTSET:
            return True
        node = node.parent
    return True


class _CliFormatter(logging.Formatter):
    """`[tag] message` for the modules under `_CLI_TAGS` (`[tag] warning: message` for a warning), and
    `ssld-zoo: warning: message` or the bare message for the others."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        warning = record.levelno >= logging.WARNING
        tag = _cli_tag(record.name)
        if tag is not None:
            return f"{tag} {'warning: ' if warning else ''}{message}"
        return f"ssld-zoo: warning: {message}" if warning else message


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is when a record comes (a test's capture included), flushing each line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def to_stderr() -> Iterator[None]:
    """While a command runs: the library's INFO records and above on stderr, one line each, in the command's own
    format; they do not reach the application's other handlers twice."""
    logger = logging.getLogger(ROOT_LOGGER)
    handler = _StderrHandler(logging.INFO)
    handler.setFormatter(_CliFormatter())
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
