"""Running a command the way the CLI does: parse its arguments, run it, and turn every `SsldZooError` (and every
refusal of the operating system) into one line on stderr with exit status 1, never a traceback. Used by `ssld-zoo`
and by the `python -m ssld_zoo.train ...` entry points. A foundation module: it knows only `errors` and `reporting`.

Ctrl-C (SIGINT) and SIGTERM end a command the same way: SIGTERM is raised as `Terminated`, a `KeyboardInterrupt`,
in the main thread, so every `finally` and cleanup runs (temporary files are removed: `ssld_zoo.files`) and code that
handles Ctrl-C handles SIGTERM alike. The command then prints one line, `ssld-zoo: interrupted`, with the command
that resumes it where there is one (`resumable`), and exits with 130 (SIGINT) or 143 (SIGTERM), as a shell reports a
process ended by that signal.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ssld_zoo.errors import FileSystemError, SsldZooError
from ssld_zoo.reporting import to_stderr

_PACKAGE = Path(__file__).resolve().parent


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, like Ctrl-C's `KeyboardInterrupt` (see the module's docstring)."""


@dataclass
class _Run:
    """The command `run_parsed` is running: its program words and arguments, the signal that interrupted it, and the
    command line that resumes it."""

    prog: list[str] = field(default_factory=lambda: ["ssld-zoo"])
    argv: list[str] = field(default_factory=list)
    signal: int | None = None
    resume_with: str | None = None


_current = _Run()


def run_command(add_arguments: Callable[[argparse.ArgumentParser], None], run: Callable[[argparse.Namespace], Any],
                argv: Sequence[str] | None, *, prog: str, description: str) -> int:
    """Parse `argv` for one command (options and KEY=VALUE overrides in any order) and run it; see `run_parsed`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_parsed(run, parser.parse_intermixed_args(argv), prog=prog, argv=argv)


def run_parsed(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace, *, prog: str = "ssld-zoo",
               argv: Sequence[str] = ()) -> int:
    """`run(args)`; an `SsldZooError` becomes one line on stderr and exit status 1, a warning of ssld_zoo's own one
    `ssld-zoo: warning:` line, and the library's log records lines on stderr (`reporting.to_stderr`). SIGINT and
    SIGTERM become one `ssld-zoo: interrupted` line and exit status 130 or 143. `prog` and `argv` are the command as
    typed (program words, then its arguments), for `command_line`."""
    global _current
    _current = _Run(prog.split(), list(argv))
    try:
        return _run(run, args)
    finally:
        _current = _Run()  # a later call in this process (a library user's) has no signal pending


def _run(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """`run_parsed`'s body, for the command recorded in `_current`."""
    try:
        with _signals_raised(), _one_line_warnings(), to_stderr():
            run(args)
    except SsldZooError as e:
        if _current.signal is not None:  # raised while a signal unwound the command: the signal is the news
            return _interrupted()
        print(f"ssld-zoo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        _current.signal = _current.signal or (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
        return _interrupted()
    except BrokenPipeError:  # e.g. `ssld-zoo list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as e:
        if _current.signal is not None:  # e.g. a DataLoader worker that the same SIGTERM ended first
            return _interrupted()
        if isinstance(e, OSError):  # the operating system refused a read or write: full disk, unwritable place
            print(f"ssld-zoo: error: {FileSystemError.from_os_error(e)}", file=sys.stderr)
            return 1
        if _out_of_memory(e):  # sizes the arguments asked for (a batch, an input size) that this machine cannot hold
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            print(f"ssld-zoo: error: Out of memory ({reason}). Ask for less: a smaller --batch-size, --input-size "
                  "or --workers.", file=sys.stderr)
            return 1
        raise
    return 0


def _out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: Python's `MemoryError`, torch's `OutOfMemoryError` (CUDA) or its
    CPU allocator's RuntimeError."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or (isinstance(error, RuntimeError) and "can't allocate memory" in str(error)))


def command_line(argv: Sequence[str] | None = None) -> str:
    """The running command as a shell line: its program words (`ssld-zoo train`) with `argv`, or with the arguments
    it was given."""
    return shlex.join([*_current.prog, *(_current.argv if argv is None else argv)])


def arguments() -> list[str]:
    """The arguments the running command was given, after its program words."""
    return list(_current.argv)


@contextlib.contextmanager
def resumable(resume_with: Callable[[], str | None]) -> Iterator[None]:
    """While the block runs, an interruption tells the user the command that resumes the work: `resume_with()`,
    asked when the block is left by an exception (None: nothing to resume yet)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            _current.resume_with = resume_with()
        raise


def raise_if_interrupted() -> None:
    """Raise again the SIGINT or SIGTERM that the running command received, if it is still running: the exception
    the signal raised can turn into another one on its way up (a file closed twice becomes an `OSError`) that a
    handler takes for a bad input and skips. Loops call this once per step, so no signal is lost for more than one
    step. A no-op outside `run_parsed` and in other threads."""
    signum = _current.signal
    if signum is not None and threading.current_thread() is threading.main_thread():
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _interrupted() -> int:
    """Print the one line for an interrupted command; its exit status, 128 + the signal's number."""
    signum = _current.signal or signal.SIGINT
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    resume = f"; resume with `{_current.resume_with}`" if _current.resume_with else ""
    print(f"ssld-zoo: interrupted{name}{resume}", file=sys.stderr)
    return 128 + signum


@contextlib.contextmanager
def _signals_raised() -> Iterator[None]:
    """SIGINT and SIGTERM recorded in `_current.signal` and raised as `KeyboardInterrupt` / `Terminated` while the
    block runs. A second signal, while the first one's cleanup runs, ends the process at once (what that cleanup had
    still to remove, the next writer in the folder removes: `ssld_zoo.files`). Only in the main thread, and only for
    a signal whose handling nobody else changed (an embedding application keeps its own).

    Where Python cannot let the exception out (a `__del__`, a fork hook of `logging`'s, a weakref callback), it
    would print it as "Exception ignored in ...", a traceback; that one is kept quiet, since the loops raise the
    signal again at their next step (`raise_if_interrupted`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_for(signum: int, frame: Any) -> None:
        if _current.signal is not None:  # asked again while cleaning up: stop now
            _current.signal = signum
            code = _interrupted()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        _current.signal = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    shown = sys.unraisablehook

    def show_unraisable(unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and _current.signal is not None):
            shown(unraisable)

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.getsignal(signum) for signum in defaults}
    taken = [signum for signum, handler in previous.items() if handler is defaults[signum]]
    for signum in taken:
        signal.signal(signum, raise_for)
    sys.unraisablehook = show_unraisable
    try:
        yield
    finally:
        sys.unraisablehook = shown
        for signum in taken:
            signal.signal(signum, previous[signum])


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
