"""Atomic writes: complete files only, mode 0644 whatever the umask, no temporary files left behind."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ssld_zoo.files import file_sha256, write_bytes_atomic, write_text_atomic


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
