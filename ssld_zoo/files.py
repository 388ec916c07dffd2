"""The one way the project writes a file, the lock that makes a run own its folder, and sha256 of files. No torch.

Every file the project writes (weights, configs, cards, metrics, checkpoints, caches, plots, exports) goes to a
temporary file beside its final path and is renamed into place (`os.replace`) only when complete, with mode 0644 set
explicitly (safetensors' writer and `mkstemp` create files readable by their owner only, and probing the umask is not
thread-safe). A reader sees the old file or the complete new one, never a half-written one. `atomic_path` is the
usual form (`atomic_file` for a writer that takes a file object); `temporary_path` + `publish` serve a write whose
temporary file must exist before the work starts; `staging_folder` serves a writer that produces several files (the
ONNX exporter).

What stands at the final path is looked at with `lstat`/`stat` (which never open it, so a FIFO cannot block the
check) when the temporary file is made and again right before the rename:

- nothing, or a regular file: written, or replaced;
- a FIFO, a character or block device, a socket or a folder: refused with one line (`WriteTargetError`) and left as
  it is. `os.replace` would swap it for a regular file: as root, `export --onnx /dev/null` replaced the device.
- a symbolic link: followed to its end. A link to a regular file has that file replaced atomically (the temporary
  file is made beside it, so the rename stays on one file system) and keeps pointing at it, as `open(path, "w")` and
  `cp` would do: a link made on purpose (`latest.onnx -> v3.onnx`, a file kept on another disk) keeps working, where
  replacing the link itself would cut it silently. A link to a special file is refused as that file would be; a
  dangling link or a loop is refused too, since creating a file wherever a link points is how a program is made to
  write where nobody told it to.

The checks guard against mistakes, not against someone swapping the target between the check and the rename: whoever
may write the folder can replace its files anyway.

Temporary names are `.{name}.{host}-{pid}.{random}.tmp` (host: 8 hex digits of the host name's sha256). They are
removed on every exit path: an exception, Ctrl-C, or SIGTERM (which `console.run_parsed` turns into an exception).
A process killed outright (SIGKILL, a power cut) cannot clean up, so a writer first removes, once per folder and
process, the leftovers of this host's writers that no longer run. A pid reused since counts as running: its leftovers
wait for a later writer.

`run_lock(folder)` lets one run at a time own a run folder, and names the holder to the one refused.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import stat
import struct
import sys
import tempfile
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ssld_zoo.errors import FileSystemError, FolderInUseError, SsldZooError, WriteTargetError

SHARED_MODE = 0o644  # owner writes, everyone reads: a shared cache or model folder works for other users
LOCK_STEM = ".ssld_zoo"  # a run folder's lock: RUN_DIR/.ssld_zoo.lock, its holder in RUN_DIR/.ssld_zoo.lock.json
_TEMPORARY = re.compile(r"\.(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})\.[a-z0-9_]{8}\.tmp")  # the name's tail
_NAME_BYTES = 100  # of the final name kept in a temporary name, which must stay under the 255-byte name limit
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}
_swept: set[Path] = set()  # folders whose dead writers' leftovers this process has removed


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks (hashlib releases the GIL, so this overlaps with other work)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # opening a FIFO or a device would block or read forever
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise FileSystemError(f"Cannot hash {os.fspath(path)}: it is {kind}, not a regular file; give the path of a "
                              "file.", path=os.fspath(path))
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- what a write replaces -------------------------------------------------------------------------------------------

def write_target(path: Path) -> Path:
    """The file a write to `path` replaces: `path` itself when nothing or a regular file stands there, or the regular
    file at the end of a symbolic link at `path`. Anything else is a `WriteTargetError`; nothing is opened."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file in the way of a folder fails later)
        return path
    except ValueError as e:  # a NUL character, which no file name can hold
        raise _nul_in_name(path, "write") from e
    except OSError as e:
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, str(path))) from e
    if stat.S_ISREG(mode):
        return path
    if not stat.S_ISLNK(mode):
        raise WriteTargetError(f"Cannot write {path}: it is {_kind(mode)}, not a regular file, and is left as it is. "
                               "Name a new file, or a regular file to replace.", path=str(path))
    try:
        resolved = Path(os.path.realpath(path, strict=True))
        mode = os.stat(resolved).st_mode
    except OSError as e:
        problem = "points to nothing" if isinstance(e, FileNotFoundError) else f"cannot be followed ({e.strerror})"
        raise WriteTargetError(f"Cannot write {path}: it is a symbolic link that {problem}, and is left as it is. "
                               "Name a new file, or a regular file to replace.", path=str(path)) from e
    if not stat.S_ISREG(mode):
        raise WriteTargetError(f"Cannot write {path}: it is a symbolic link to {resolved}, {_kind(mode)}, not a "
                               "regular file; both are left as they are. Name a new file, or a regular file to "
                               "replace.", path=str(path))
    return resolved


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def make_folder(folder: Path) -> None:
    """Create `folder` and its parents; a place that cannot hold it is a `FileSystemError` naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:  # something that is not a folder stands there or above it
        blocker = next((p for p in (folder, *folder.parents) if os.path.lexists(p) and not p.is_dir()), folder)
        raise FileSystemError.from_os_error(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocker))) from e
    except OSError as e:  # a place that cannot be written
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, e.filename or str(folder))) from e
    except ValueError as e:  # a NUL character, which no folder name can hold
        raise _nul_in_name(folder, "create") from e


def _nul_in_name(path: Path, action: str) -> FileSystemError:
    return FileSystemError(f"Cannot {action} {os.fspath(path)!r}: the name holds a NUL character, which no file "
                           "name can; name another path.", path=os.fspath(path))


# --- temporary files and publishing ----------------------------------------------------------------------------------

def temporary_path(path: Path) -> Path:
    """A new empty temporary file beside the file that a write to `path` replaces (`write_target`), for `publish`.
    The caller removes it if it does not publish it. A folder that cannot be written is a `FileSystemError` naming
    `path`, the file asked for, not the temporary name."""
    target = write_target(Path(path))
    make_folder(target.parent)
    _sweep(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_temporary_prefix(target), suffix=".tmp")
    except OSError as e:
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, str(path))) from e
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path) -> None:
    """Give the finished temporary file `tmp` mode 0644 and rename it onto the file a write to `path` replaces
    (checked again now: see the module's docstring); `tmp` is gone afterwards, whatever happens."""
    try:
        target = write_target(Path(path))
        os.chmod(tmp, SHARED_MODE)
        os.replace(tmp, target)
    except SsldZooError:
        raise
    except OSError as e:
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, str(path))) from e
    finally:
        with suppress(OSError):
            os.unlink(tmp)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for the caller to write; published to `path` (mode 0644) when the block ends
    normally, removed when it raises (Ctrl-C and SIGTERM included), so `path` is either the old file or the complete
    new one."""
    tmp = temporary_path(path)
    try:
        yield tmp
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    publish(tmp, path)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """`atomic_path` with the temporary file open for binary writing, for writers that take a file object (numpy's
    `savez` would add `.npz` to a temporary name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file (mode 0644)."""
    with atomic_file(path) as f:
        f.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file (mode 0644)."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextmanager
def staging_folder(path: Path) -> Iterator[Path]:
    """A new temporary folder beside `path`, for a writer that produces `path` and files beside it; each finished
    file is `publish`ed from there. The folder and whatever is left in it are removed when the block ends."""
    target = write_target(Path(path))
    make_folder(target.parent)
    _sweep(target.parent)
    try:
        folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=_temporary_prefix(target), suffix=".tmp"))
    except OSError as e:
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, str(path))) from e
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_prefix(target: Path) -> str:
    name = target.name.encode("utf-8", "surrogateescape")[:_NAME_BYTES].decode("utf-8", "ignore")
    return f".{name}.{_host_tag()}-{os.getpid()}."


@lru_cache(maxsize=1)
def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _sweep(folder: Path) -> None:
    """Remove the temporary files and folders that this host's writers which no longer run left in `folder`."""
    key = folder.resolve()
    if key in _swept:
        return
    _swept.add(key)
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            found = _TEMPORARY.search(entry.name) if entry.name.startswith(".") else None
            if found is None or found["host"] != _host_tag() or _running(int(found["pid"])):
                continue
            with suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def _running(pid: int) -> bool:
    """Whether process `pid` runs on this host (a process of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


# --- a run owns its folder -------------------------------------------------------------------------------------------

@contextmanager
def run_lock(path: Path, *, beside: bool = False, option: str = "--out") -> Iterator[None]:
    """Own the run folder `path` while the block runs: hold `path/.ssld_zoo.lock` (the folder is created), with who
    holds it in `path/.ssld_zoo.lock.json` (pid, host, command line, start time). With `beside`, `path` is an output
    file and the two files are `.{name}.lock` and `.{name}.lock.json` beside it. A second holder, in this process or
    another, is refused at once with a `FolderInUseError` that names the first and says to choose another `option`.

    The lock is the operating system's (filelock's `flock`), so it goes when its process ends, however it ends. The
    empty lock file stays (removing it could let two runs hold two files), except in a folder that this call created
    and that holds nothing else when the block ends (a run refused before it wrote anything)."""
    from filelock import FileLock, Timeout
    path = Path(path)
    folder, stem = (path.parent, f".{path.name}") if beside else (path, LOCK_STEM)
    created = not folder.exists()
    make_folder(folder)
    info, lock_file = folder / f"{stem}.lock.json", folder / f"{stem}.lock"
    lock = FileLock(os.fspath(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout as e:
        holder = _holder(info)
        raise FolderInUseError(f"{path} is in use by another run ({_describe(holder)}). Wait for it to finish, or "
                               f"choose another {option}.", path=str(path), holder=holder) from e
    except OSError as e:
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, str(path))) from e
    try:
        write_text_atomic(info, json.dumps(_this_process()) + "\n")
        yield
    finally:
        with suppress(OSError):
            os.unlink(info)
            if created and os.listdir(folder) == [lock_file.name]:
                os.unlink(lock_file)
                folder.rmdir()
        lock.release()


def _this_process() -> dict[str, Any]:
    command = shlex.join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def _holder(info: Path) -> dict[str, Any] | None:
    """The holder recorded in a lock-info file, or None when it is missing, not yet written, or not one."""
    from ssld_zoo.reading import open_regular
    try:
        with open_regular(info, what="lock-info file") as f:
            holder = json.loads(f.read(4096))
    except (SsldZooError, OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "it has not said which yet"
    fields = [f"pid {holder.get('pid')} on {holder.get('host')}", f"`{holder.get('command')}`",
              f"started {holder.get('started')}"]
    return ", ".join(str(field)[:320] for field in fields)


def save_safetensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save `tensors` (torch) as safetensors at `path`, a temporary path the caller publishes, with the header made
    byte-stable (`canonical_safetensors`): the same tensors and metadata always give the same sha256."""
    from safetensors.torch import save_file
    save_file(tensors, os.fspath(path), metadata=metadata)
    canonical_safetensors(path)


def canonical_safetensors(path: Path) -> None:
    """Rewrite a safetensors header in place with its keys sorted, so the same tensors and metadata always give the
    same bytes (safetensors' writer orders the metadata by a randomly seeded hash map). The header keeps its length:
    the same keys and values, reordered, padded with spaces as the format allows. Meant for a temporary file."""
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > length:  # cannot happen for a header the writer produced; leave such a file as it is
            return
        f.seek(8)
        f.write(text + b" " * (length - len(text)))
