"""Writing files so that nothing is half-written and everyone can read them, and hashing them. No torch here.

Every file the project writes (weights, configs, cards, metrics, caches) goes to a temporary file beside its final
path and is renamed into place only when complete, with mode 0644 set explicitly: safetensors' writer and `mkstemp`
create files readable by their owner only, and probing the umask (`os.umask(0)`) is not thread-safe.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SHARED_MODE = 0o644  # owner writes, everyone reads: a shared cache or model folder works for other users


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks (hashlib releases the GIL, so this overlaps with other work)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def temporary_path(path: Path) -> Path:
    """A new empty temporary file beside `path` (same folder, so the final rename is atomic); a folder that cannot
    be written is a `FileSystemError` naming `path`, the file asked for, not the temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        from ssld_zoo.errors import FileSystemError
        raise FileSystemError.from_os_error(OSError(e.errno, e.strerror, str(path))) from None
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path) -> None:
    """Give the finished temporary file `tmp` mode 0644 and rename it to `path`; `tmp` is gone afterwards."""
    try:
        os.chmod(tmp, SHARED_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for the caller to write; renamed to `path` (mode 0644) when the block ends
    normally, removed when it raises, so `path` is either the old file or the complete new one."""
    tmp = temporary_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file (mode 0644)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file (mode 0644)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def canonical_safetensors(path: Path) -> None:
    """Rewrite a safetensors header in place with its keys sorted, so the same tensors and metadata always give the
    same bytes (safetensors' writer orders the metadata by a randomly seeded hash map). The header keeps its length:
    the same keys and values, reordered, padded with spaces as the format allows."""
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > length:  # cannot happen for a header the writer produced; leave such a file as it is
            return
        f.seek(8)
        f.write(text + b" " * (length - len(text)))
