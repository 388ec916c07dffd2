"""WebDataset tar shards: written once by `ssld-zoo pack`, read by the `shards:` recipe source on every node.

A shard is a plain tar file; each sample is two members with the same key, `KEY.jpg` (or `.png`, ...: the image as
stored) and `KEY.cls` (its class index as ASCII digits; absent for an unlabeled image), as WebDataset, OpenCLIP
and `wids` read them. `index.json` beside the shards lists them in `wids`'s shard-index form
(`{"__kind__": "wids-shard-index-v1", "shardlist": [{"url": ..., "nsamples": ...}, ...]}`).

A location is a folder or URL holding `index.json`, the index file itself, or a brace pattern of shard paths or URLs
(`train-{000000..000099}.tar`). Shards behind http(s) URLs are fetched once into `$SSLD_ZOO_CACHE/shards/` (keyed by
URL, size-checked), then read like local ones: training draws samples in a seeded global order, so every sample
needs random access.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ssld_zoo.errors import DataError
from ssld_zoo.reading import MAX_LIST_BYTES, parse_json, read_bytes

INDEX = "index.json"
INDEX_KIND = "wids-shard-index-v1"
SHARD_NAME = "shard-{:06d}.tar"
IMAGE_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
                    "TIFF": "tiff", "PPM": "ppm"}
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")
TIMEOUT_S = 60


@dataclass(frozen=True)
class Member:
    """One sample of a shard: where its image's bytes lie, and its label (-1: none)."""

    key: str
    offset: int
    size: int
    label: int


# -- writing ------------------------------------------------------------------------------------------------------
def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # no time stamp: the same input packs to the same bytes
    tar.addfile(info, io.BytesIO(data))


def write_shards(samples: Iterable[tuple[bytes, str, int]], out: Path, per_shard: int) -> dict:
    """Write `samples` ((image bytes, extension, label or -1), in order) as tar shards of `per_shard` samples into
    `out`, and their `index.json`; returns the index. Each shard and the index appear whole or not at all."""
    from ssld_zoo.files import atomic_file, make_folder, write_text_atomic
    make_folder(out)
    shards: list[dict] = []
    batch: list[tuple[bytes, str, int]] = []

    def flush() -> None:
        name = SHARD_NAME.format(len(shards))
        start = sum(s["nsamples"] for s in shards)
        with atomic_file(out / name) as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i, (data, extension, label) in enumerate(batch):
                key = f"{start + i:09d}"
                _add(tar, f"{key}.{extension}", data)
                if label >= 0:
                    _add(tar, f"{key}.cls", str(label).encode())
        shards.append({"url": name, "nsamples": len(batch)})
        batch.clear()

    for sample in samples:
        batch.append(sample)
        if len(batch) == per_shard:
            flush()
    if batch:
        flush()
    index = {"__kind__": INDEX_KIND, "wids_version": 1, "shardlist": shards}
    write_text_atomic(out / INDEX, json.dumps(index, indent=1) + "\n")
    return index


# -- reading ------------------------------------------------------------------------------------------------------
def is_url(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme in ("http", "https")


def _join(base: str, name: str) -> str:
    if is_url(name) or Path(name).is_absolute():
        return name
    return urllib.parse.urljoin(base, name) if is_url(base) else str(Path(base).parent / name)


def expand_braces(pattern: str) -> list[str]:
    """`a-{000..002}.tar` -> a-000.tar, a-001.tar, a-002.tar (zero padding kept; several ranges multiply)."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    first, last = match[1], match[2]
    if int(last) < int(first):
        raise DataError(f"Shard pattern {pattern}: the range {{{first}..{last}}} is empty.")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [name for n in range(int(first), int(last) + 1)
            for name in expand_braces(f"{head}{n:0{len(first)}d}{tail}")]


def shard_list(location: str) -> list[str]:
    """The shard paths or URLs that a `shards:` location names (see the module docstring), in order."""
    if _BRACES.search(location):
        return expand_braces(location)
    if is_url(location):
        index_url = location if location.endswith(".json") else location.rstrip("/") + "/" + INDEX
        return [_join(index_url, s["url"]) for s in _read_index(_fetch(index_url), index_url)]
    path = Path(location)
    index_path = path if path.suffix == ".json" else path / INDEX
    if not index_path.is_file():
        raise DataError(f"Data source 'shards:{location}': {index_path} does not exist; give a folder written by "
                        "`ssld-zoo pack`, its index.json, or a brace pattern of tar shards (train-{000..009}.tar).",
                        path=str(index_path))
    data = read_bytes(index_path, what="shard index", max_bytes=MAX_LIST_BYTES, error=DataError)
    return [_join(str(index_path), s["url"]) for s in _read_index(data, str(index_path))]


def _read_index(data: bytes, where: str) -> list[dict]:
    index = parse_json(data, where=f"The shard index {where}", path=where, error=DataError)
    shards = index.get("shardlist") if isinstance(index, dict) else None
    if not isinstance(shards, list) or not shards or not all(isinstance(s, dict) and isinstance(s.get("url"), str)
                                                             for s in shards):
        raise DataError(f"{where} is not a shard index (its 'shardlist' must list at least one {{'url': ...}}); "
                        "write one with `ssld-zoo pack`.", path=where)
    return shards


def _fetch(url: str) -> bytes:
    """A shard index over http(s), at most `MAX_LIST_BYTES`."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            data = answer.read(MAX_LIST_BYTES + 1)
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"Cannot fetch {url}: {e}.", url=url) from e
    if len(data) > MAX_LIST_BYTES:
        raise DataError(f"{url} is larger than {MAX_LIST_BYTES:,} bytes: not a shard index.", url=url)
    return data


def local_shard(location: str, cache: Path) -> Path:
    """A shard's local path: the path itself, or the copy of a URL in `cache` (fetched once, size-checked)."""
    if not is_url(location):
        path = Path(location)
        if not path.is_file():
            raise DataError(f"Shard {location} does not exist.", path=location)
        return path
    from ssld_zoo.files import atomic_file
    path = cache / hashlib.sha256(location.encode()).hexdigest()[:32] / Path(urllib.parse.urlsplit(location).path).name
    if path.is_file():
        return path
    try:
        with urllib.request.urlopen(location, timeout=TIMEOUT_S) as answer, atomic_file(path) as f:
            expected, got = answer.headers.get("Content-Length"), 0
            while chunk := answer.read(1 << 20):
                f.write(chunk)
                got += len(chunk)
            if expected is not None and got != int(expected):
                raise DataError(f"{location} ended after {got} of {expected} bytes; try again.", url=location)
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"Cannot fetch {location}: {e}.", url=location) from e
    return path


def members(path: Path) -> Iterator[Member]:
    """The samples of a tar shard in order, read from its headers (and its `.cls` members)."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            images: dict[str, tarfile.TarInfo] = {}
            labels: dict[str, int] = {}
            order: list[str] = []
            for info in tar:
                if not info.isfile():
                    continue
                key, _, extension = info.name.partition(".")
                if extension == "cls":
                    if info.size > 19:
                        raise ValueError(f"{info.name} holds {info.size} bytes, not a class index")
                    labels[key] = int(tar.extractfile(info).read())  # type: ignore[union-attr]
                elif extension.lower() in IMAGE_EXTENSIONS.values() or extension.lower() == "jpeg":
                    images[key] = info
                    order.append(key)
    except (tarfile.TarError, OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable tar shard ({e}).", path=str(path)) from e
    for key in order:
        yield Member(key, images[key].offset_data, images[key].size, labels.get(key, -1))
