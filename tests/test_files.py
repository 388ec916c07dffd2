"""Atomic writes: complete files only, mode 0644 whatever the umask, no temporary files left behind, nothing but a
regular file ever replaced; and the lock that makes a run own its folder."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from train_support import python_env

from ssld_zoo.console import Terminated
from ssld_zoo.errors import FileSystemError, FolderInUseError, WriteTargetError
from ssld_zoo.files import (atomic_file, atomic_path, file_sha256, publish, run_lock, staging_folder, temporary_path,
                            write_bytes_atomic, write_text_atomic)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_are_shareable_whatever_the_umask(tmp_path: Path, umask: int):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a" / "config.json", "{}\n")
    finally:
        os.umask(old)
    path = tmp_path / "a" / "config.json"
    assert path.read_text() == "{}\n" and path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_concurrent_writers_leave_one_complete_file(tmp_path: Path):
    path = tmp_path / "weights.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=write_bytes_atomic, args=(path, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_bytes() in payloads and list(tmp_path.iterdir()) == [path]
    assert len(file_sha256(path)) == 64


def test_a_failed_write_leaves_nothing(tmp_path: Path):
    with pytest.raises(TypeError):
        write_bytes_atomic(tmp_path / "x.bin", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# --- what stands at the target -------------------------------------------------------------------------------------
OLD, NEW = b"old contents\n", bytes(range(256)) * 64
SPECIAL = ("fifo", "folder", "link to a fifo", "dangling link", "link loop", "link to a device")
KINDS = ("missing", "regular", "link to a regular file", *SPECIAL)


def _place(folder: Path, kind: str) -> Path:
    """`folder/out.bin` as `kind` says."""
    target = folder / "out.bin"
    if kind == "regular":
        target.write_bytes(OLD)
    elif kind == "link to a regular file":
        (folder / "real.bin").write_bytes(OLD)
        target.symlink_to("real.bin")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    elif kind == "link to a fifo":
        os.mkfifo(folder / "pipe")
        target.symlink_to("pipe")
    elif kind == "dangling link":
        target.symlink_to("nowhere")
    elif kind == "link loop":
        target.symlink_to("out.bin")
    elif kind == "link to a device":
        target.symlink_to(os.devnull)
    return target


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every entry of `folder`: its type, inode and contents (a link's destination, a folder's names)."""
    shot: dict[str, tuple[int, int, bytes | str]] = {}
    for entry in sorted(os.listdir(folder)):
        path, info = folder / entry, os.lstat(folder / entry)
        kind = stat.S_IFMT(info.st_mode)
        contents: bytes | str = (os.readlink(path) if kind == stat.S_IFLNK else path.read_bytes() if
                                 kind == stat.S_IFREG else ",".join(os.listdir(path)) if kind == stat.S_IFDIR else "")
        shot[entry] = (kind, info.st_ino, contents)
    return shot


def _via_atomic_path(target: Path, fault: BaseException | None, ran: list[bool]) -> None:
    with atomic_path(target) as tmp:
        ran.append(True)
        tmp.write_bytes(NEW[:1000])
        if fault is not None:
            raise fault
        tmp.write_bytes(NEW)


def _via_atomic_file(target: Path, fault: BaseException | None, ran: list[bool]) -> None:
    with atomic_file(target) as f:
        ran.append(True)
        f.write(NEW[:1000])
        if fault is not None:
            raise fault
        f.write(NEW[1000:])


def _via_publish(target: Path, fault: BaseException | None, ran: list[bool]) -> None:
    tmp = temporary_path(target)
    try:
        ran.append(True)
        tmp.write_bytes(NEW[:1000])
        if fault is not None:
            raise fault
        tmp.write_bytes(NEW)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, target)


def _via_staging_folder(target: Path, fault: BaseException | None, ran: list[bool]) -> None:
    with staging_folder(target) as staging:
        ran.append(True)
        (staging / target.name).write_bytes(NEW[:1000])
        if fault is not None:
            raise fault
        (staging / target.name).write_bytes(NEW)
        publish(staging / target.name, target)


WRITERS = {"atomic_path": _via_atomic_path, "atomic_file": _via_atomic_file, "temporary_path + publish": _via_publish,
           "staging_folder": _via_staging_folder}
FAULTS: dict[str, Callable[[], BaseException | None]] = {
    "none": lambda: None, "ValueError": lambda: ValueError("boom"), "Ctrl-C": KeyboardInterrupt,
    "SIGTERM": Terminated, "full disk": lambda: OSError(errno.ENOSPC, "No space left on device")}


@pytest.mark.timeout(120)  # a writer that opened a FIFO would block here forever
@settings(max_examples=max(200, settings.default.max_examples))  # cheap examples: cover every combination
@given(kind=st.sampled_from(KINDS), writer=st.sampled_from(sorted(WRITERS)), fault=st.sampled_from(sorted(FAULTS)))
def test_property_a_write_gives_the_old_or_the_new_file_and_leaves_special_files_alone(kind: str, writer: str,
                                                                                       fault: str):
    """Whatever stands at the target and wherever the writer fails: only the typed refusal or the writer's own
    exception escapes, no temporary file remains, a special file (and every link) is untouched and refused before
    the writer starts, and the target holds the old contents or the complete new ones (mode 0644)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        target = _place(folder, kind)
        before, injected, ran = _snapshot(folder), FAULTS[fault](), []
        try:
            WRITERS[writer](target, injected, ran)
            raised: BaseException | None = None
        except BaseException as e:  # noqa: BLE001 - what escapes is the property under test
            raised = e
        assert not [n for n in os.listdir(folder) if n.endswith(".tmp")], os.listdir(folder)
        if kind in SPECIAL:
            assert isinstance(raised, WriteTargetError) and str(target) in str(raised) and not ran, raised
            assert "\n" not in str(raised) and _snapshot(folder) == before
            return
        assert raised is injected, raised
        final = folder / "real.bin" if kind == "link to a regular file" else target
        if kind == "link to a regular file":
            assert os.readlink(target) == "real.bin"  # the link still leads where it led
        if injected is not None:
            assert _snapshot(folder) == before
        else:
            assert final.read_bytes() == NEW and stat.S_IMODE(final.stat().st_mode) == 0o644


def test_a_socket_is_not_replaced():
    with tempfile.TemporaryDirectory(dir="/tmp") as name, socket.socket(socket.AF_UNIX) as server:
        path = Path(name) / "s"
        server.bind(str(path))
        with pytest.raises(WriteTargetError, match=r"it is a socket, not a regular file"):
            write_text_atomic(path, "x")
        assert stat.S_ISSOCK(os.lstat(path).st_mode) and os.listdir(name) == ["s"]


def test_a_file_in_the_way_of_the_folder_is_one_line(tmp_path: Path):
    (tmp_path / "f").write_text("")
    with pytest.raises(FileSystemError, match=rf"Cannot use {tmp_path / 'f'}: Not a directory \(a file stands"):
        write_text_atomic(tmp_path / "f" / "sub" / "x.json", "{}")


# --- temporary names and the leftovers of dead writers -----------------------------------------------------------
WRITER_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from ssld_zoo.files import temporary_path
print(temporary_path(Path(sys.argv[1])), flush=True)
if sys.argv[2] == "die":
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup can run
time.sleep(120)
"""


def _writer(target: Path, then: str) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(target), then], stdout=subprocess.PIPE,
                               text=True, env=python_env())
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer_and_a_live_ones_kept(tmp_path: Path):
    live, live_tmp = _writer(tmp_path / "b.bin", "sleep")
    dead, dead_tmp = _writer(tmp_path / "a.bin", "die")
    assert dead.wait(timeout=60) == -signal.SIGKILL
    try:
        assert dead_tmp.exists() and f"-{dead.pid}." in dead_tmp.name and dead_tmp.name.startswith(".a.bin.")
        assert f"-{live.pid}." in live_tmp.name
        write_text_atomic(tmp_path / "c.json", "{}")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.json", live_tmp.name])
    finally:
        live.kill()
        live.wait()


# --- a run owns its folder ---------------------------------------------------------------------------------------
HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from ssld_zoo.files import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    """A process holding `run_lock(folder)` (as a running `train --out folder` does) until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(folder), "--marker"],
                               stdout=subprocess.PIPE, text=True, env=python_env())
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_held_run_folder_is_refused_at_once_naming_the_holder_and_free_when_it_dies(tmp_path: Path):
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(FolderInUseError) as refused:
            with run_lock(tmp_path / "run"):
                pytest.fail("a second holder got the lock")
        message = str(refused.value)
        assert message.startswith(f"{tmp_path / 'run'} is in use by another run (pid {holder.pid} on ")
        assert "--marker" in message and "started 20" in message and message.endswith("choose another --out.")
        assert refused.value.holder is not None and refused.value.holder["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path / "run"):  # the operating system let go of the dead holder's lock
        assert json.loads((tmp_path / "run" / ".ssld_zoo.lock.json").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / ".ssld_zoo.lock.json").exists()


def test_a_run_refused_before_it_wrote_anything_leaves_no_folder(tmp_path: Path):
    with pytest.raises(ValueError):
        with run_lock(tmp_path / "new"):
            raise ValueError("refused")
    assert not (tmp_path / "new").exists()
