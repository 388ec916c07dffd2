"""Interrupted and concurrent commands: SIGINT (Ctrl-C) and SIGTERM end any command with one line, exit status 130
or 143, no traceback and no temporary file (`console.run_parsed`); a second run into a folder that a running one
owns is refused at once, naming the holder (`files.run_lock`). The training cases are real `ssld-zoo` processes
signalled as a terminal or a job scheduler would signal them."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Iterator

import pytest
from test_files import hold_lock
from train_support import TinyData, base_recipe, python_env, write_recipe

from ssld_zoo.cli import main
from ssld_zoo.console import command_line, resumable, run_parsed
from ssld_zoo.files import atomic_path


@pytest.fixture(autouse=True)
def ctrl_c_is_delivered() -> Iterator[None]:
    """Ctrl-C reaches these tests and the commands they start, however the suite itself was started: a shell starts a
    background job (`cmd &`, `nohup`) with SIGINT ignored, and a command rightly leaves an ignored signal ignored.
    A caught signal is reset to its default in a started process, so its children get Ctrl-C too."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def _endless_training(tiny_data: TinyData, tmp_path: Path, **runtime: int) -> Path:
    """A tiny recipe that trains far longer than any test waits."""
    raw = base_recipe(tiny_data, runtime={"seed": 0, **runtime})
    raw["stages"][0]["epochs"] = 100_000
    return write_recipe(tmp_path / "recipe.yaml", raw)


def _start(argv: list[str], log: IO[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ssld_zoo", *argv], env=python_env(), stdout=log, stderr=log,
                            start_new_session=True)


def _wait_for(path: Path, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 200
    while not path.exists():
        assert process.poll() is None, log.read_text()  # it ended before getting there
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)


def _one_line(log: Path) -> str:
    """The only `ssld-zoo:` line of a run's output, which must be its last, with no traceback before it."""
    lines = log.read_text().splitlines()
    assert "Traceback" not in log.read_text(), log.read_text()
    assert [line for line in lines if line.startswith("ssld-zoo:")] == lines[-1:], lines
    return lines[-1]


def test_sigterm_and_ctrl_c_mid_training_are_one_line_each(tmp_path: Path, tiny_data: TinyData):
    """Two runs at once (to share their start-up time). `kill PID`, what a job scheduler sends, after the first
    checkpoint: the command that resumes, status 143. Ctrl-C in a terminal, which signals the whole process group (the
    trainer and its data workers): status 130, and the resume command only when a checkpoint was saved."""
    runs = {"term": (tmp_path / "term", "checkpoint.pt", {"workers": 0, "checkpoint_every": 2}),
            "int": (tmp_path / "int", "metrics.jsonl", {"workers": 2, "checkpoint_every": 10**9})}
    started: dict[str, tuple[subprocess.Popen, Path, Path, IO[str]]] = {}
    for name, (folder, _, runtime) in runs.items():
        folder.mkdir()
        recipe, log = _endless_training(tiny_data, folder, **runtime), folder / "train.log"
        sink = open(log, "w")
        started[name] = (_start(["train", str(recipe), "--out", str(folder / "run"), "--device", "cpu"], sink),
                         recipe, log, sink)
    try:
        for name, (process, _, log, _) in started.items():
            _wait_for(runs[name][0] / "run" / runs[name][1], process, log)
        time.sleep(0.5)  # into the next steps, checkpoint writes and worker batches
        started["term"][0].send_signal(signal.SIGTERM)
        os.killpg(started["int"][0].pid, signal.SIGINT)
        codes = {name: process.wait(timeout=120) for name, (process, *_) in started.items()}
    finally:
        for process, _, _, sink in started.values():
            process.kill()
            sink.close()
    assert codes == {"term": 128 + signal.SIGTERM, "int": 128 + signal.SIGINT}
    out, recipe = tmp_path / "term" / "run", started["term"][1]
    assert _one_line(started["term"][2]) == (f"ssld-zoo: interrupted (SIGTERM); resume with `ssld-zoo train {recipe} "
                                             f"--out {out} --resume --device cpu`")
    interrupted, int_out = started["int"], tmp_path / "int" / "run"
    resume = (f"; resume with `ssld-zoo train {interrupted[1]} --out {int_out} --resume --device cpu`"
              if (int_out / "checkpoint.pt").exists() else "")  # an epoch's end may have saved one on a slow machine
    assert _one_line(interrupted[2]) == f"ssld-zoo: interrupted{resume}"
    assert not _leftovers(tmp_path) and not (out / ".ssld_zoo.lock.json").exists()


def test_a_second_train_into_a_folder_in_use_is_refused_naming_the_holder(tmp_path: Path, tiny_data: TinyData,
                                                                          capsys: pytest.CaptureFixture[str]):
    recipe = write_recipe(tmp_path / "recipe.yaml", base_recipe(tiny_data))
    holder = hold_lock(tmp_path / "run")  # as a running `ssld-zoo train ... --out run` holds it
    try:
        assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 1
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.startswith(f"ssld-zoo: error: {tmp_path / 'run'} is in use by another run (pid {holder.pid} on ")
    assert err.count("\n") == 1 and "--marker" in err and err.endswith("or choose another --out.\n")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".ssld_zoo.lock", ".ssld_zoo.lock.json"]


def _interrupted_command(signum: int, folder: Path) -> int:
    """`run_parsed` of a command that is writing `folder/out.bin` when this process gets the signal `signum`."""
    def command(args: argparse.Namespace) -> None:
        with resumable(command_line), atomic_path(folder / "out.bin"):
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises long before this ends
    return run_parsed(command, argparse.Namespace(), prog="ssld-zoo demo", argv=["--out", "x"])


@pytest.mark.parametrize("signum, line", [
    (signal.SIGINT, "ssld-zoo: interrupted; resume with `ssld-zoo demo --out x`"),
    (signal.SIGTERM, "ssld-zoo: interrupted (SIGTERM); resume with `ssld-zoo demo --out x`"),
])
def test_a_signal_unwinds_the_command_and_is_one_line(signum: int, line: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    previous = signal.getsignal(signal.SIGTERM)
    assert _interrupted_command(signum, tmp_path) == 128 + signum
    assert capsys.readouterr().err == line + "\n"
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed on the way out
    assert signal.getsignal(signal.SIGTERM) is previous  # the command's handlers are gone


def test_an_error_raised_while_a_signal_unwinds_is_still_the_interruption(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]):
    """What a dying data worker raises after the same SIGTERM ended it first is not the news: the signal is."""
    def command(args: argparse.Namespace) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")
    assert run_parsed(command, argparse.Namespace()) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "ssld-zoo: interrupted (SIGTERM)\n"


SLOW_CLEANUP = """
import argparse, sys, time
from ssld_zoo.console import run_parsed
def command(args):
    try:
        print("working", flush=True)
        time.sleep(60)
    finally:
        print("cleaning up", flush=True)
        time.sleep(60)  # a cleanup that hangs
sys.exit(run_parsed(command, argparse.Namespace()))
"""


def test_a_second_signal_during_a_hanging_cleanup_ends_the_process_at_once():
    process = subprocess.Popen([sys.executable, "-c", SLOW_CLEANUP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=python_env())
    assert process.stdout is not None and process.stdout.readline() == "working\n"
    process.send_signal(signal.SIGTERM)
    assert process.stdout.readline() == "cleaning up\n"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 128 + signal.SIGINT
    assert process.communicate()[1] == "ssld-zoo: interrupted\n"



class _SwallowingImages:
    """A map-style dataset that sends this process `signum` while it reads item 1 and, like a careless handler (or an
    interrupt turned into an `OSError` on its way up), takes every exception for a bad image."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __getitem__(self, key: int) -> int | None:
        try:
            if key == 1:
                os.kill(os.getpid(), self.signum)
            time.sleep(0.05)
            return key
        except BaseException:
            return None


@pytest.mark.parametrize("signum, line", [(signal.SIGINT, "ssld-zoo: interrupted\n"),
                                          (signal.SIGTERM, "ssld-zoo: interrupted (SIGTERM)\n")])
def test_a_signal_that_a_handler_swallowed_still_ends_the_data_loop_at_the_next_batch(
        signum: int, line: str, capsys: pytest.CaptureFixture[str]):
    from ssld_zoo.train.data import loader
    seen: list[Any] = []

    def command(args: argparse.Namespace) -> None:
        batches = loader(_SwallowingImages(signum), [[0], [1], [2], [3]], workers=0, collate=lambda items: items)
        seen.extend(batches)

    assert run_parsed(command, argparse.Namespace()) == 128 + signum
    assert seen == [[0]]  # neither the batch that swallowed the signal nor any after it is handed on
    assert capsys.readouterr().err == line



SIGNAL_IN_A_FINALISER = """
import argparse, os, sys, time
from ssld_zoo.console import run_parsed
from ssld_zoo.train.data import loader
SIGNUM = int(sys.argv[1])

class SignalsWhenCollected:
    def __del__(self):
        os.kill(os.getpid(), SIGNUM)
        time.sleep(0.05)

class Images:
    def __getitem__(self, key):
        if key == 1:
            SignalsWhenCollected()  # made and dropped at once
        return key

def command(args):
    for batch in loader(Images(), [[0], [1], [2], [3]], workers=0, collate=lambda items: items):
        print(batch, flush=True)

sys.exit(run_parsed(command, argparse.Namespace()))
"""


@pytest.mark.parametrize("signum, line", [(signal.SIGINT, "ssld-zoo: interrupted\n"),
                                          (signal.SIGTERM, "ssld-zoo: interrupted (SIGTERM)\n")])
def test_a_signal_python_could_not_raise_is_quiet_and_still_ends_the_data_loop(signum: int, line: str):
    """Python cannot let an exception out of a finaliser, nor out of a fork hook such as `logging`'s, where a Ctrl-C
    to a trainer and its data workers once landed: it would print "Exception ignored in ..." and a traceback. The
    command prints only its one line, and the loop ends at its next batch."""
    done = subprocess.run([sys.executable, "-c", SIGNAL_IN_A_FINALISER, str(int(signum))], capture_output=True,
                          text=True, env=python_env(), timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (128 + signum, "[0]\n", line)
