"""Running a command the way the CLI does: parse its arguments, run it, and turn every `SsldZooError` (and every
refusal of the operating system) into one line on stderr with exit status 1, never a traceback. Used by `ssld-zoo`
and by the `python -m ssld_zoo.train ...` entry points. A foundation module: it knows only `errors`.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ssld_zoo.errors import FileSystemError, SsldZooError

_PACKAGE = Path(__file__).resolve().parent


def run_command(add_arguments: Callable[[argparse.ArgumentParser], None], run: Callable[[argparse.Namespace], Any],
                argv: Sequence[str] | None, *, prog: str, description: str) -> int:
    """Parse `argv` for one command (options and KEY=VALUE overrides in any order) and run it; see `run_parsed`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return run_parsed(run, parser.parse_intermixed_args(argv))


def run_parsed(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """`run(args)`; an `SsldZooError` becomes one line on stderr and exit status 1, and a warning of ssld_zoo's own
    one `ssld-zoo: warning:` line."""
    try:
        with _one_line_warnings():
            run(args)
    except SsldZooError as e:
        print(f"ssld-zoo: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `ssld-zoo list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as e:  # the operating system refused a read or write: full disk, read-only or unwritable place
        print(f"ssld-zoo: error: {FileSystemError.from_os_error(e)}", file=sys.stderr)
        return 1
    return 0



@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show the package's own warnings as one line each (not Python's `file:line: Category` plus source line); other
    libraries' warnings keep their usual form."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if Path(filename).resolve().is_relative_to(_PACKAGE):
            print(f"ssld-zoo: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
