"""Plain HTTP(S) downloads (PaddleClas's host, a mirror of it): resumable, bounded in time, never half-written.

A download goes to `DEST.part` and is renamed to `DEST` only when complete; an interrupted one is resumed from the
bytes already there with an HTTP `Range` request (a server that ignores it sends the whole file again). Each read
waits at most `DOWNLOAD_TIMEOUT_S` seconds, and the whole download at most `SSLD_ZOO_DOWNLOAD_DEADLINE_S` (default
`DEFAULT_DEADLINE_S`). Imports no torch.
"""
from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from ssld_zoo.errors import DownloadFailed, FileSystemError
from ssld_zoo.version import __version__

DOWNLOAD_TIMEOUT_S = 60
DEFAULT_DEADLINE_S = 3 * 3600
DEADLINE_ENV = "SSLD_ZOO_DOWNLOAD_DEADLINE_S"
_CHUNK = 1 << 20




def deadline_s() -> float:
    """The overall time limit of one download, from `SSLD_ZOO_DOWNLOAD_DEADLINE_S` when set."""
    value = os.environ.get(DEADLINE_ENV)
    if not value:
        return DEFAULT_DEADLINE_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise DownloadFailed(f"{DEADLINE_ENV}={value!r} is not a positive number of seconds.", url="")
    return seconds


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: Path, *, progress_label: str | None = None) -> Path:
    """Fetch `url` into `dest` (resuming `dest.part` when there is one); return `dest`.

    Raises `DownloadFailed` (HTTP error, connection problem, timeout, deadline, short body) naming the URL, and
    `FileSystemError` when the file cannot be written.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    limit = deadline_s()
    started = time.monotonic()
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"ssld_zoo/{__version__}", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=min(DOWNLOAD_TIMEOUT_S, limit)) as response:
            resumed = offset > 0 and response.status == 206
            length = int(response.headers.get("Content-Length") or 0)
            total = (offset + length if resumed else length) or None
            with open(part, "ab" if resumed else "wb") as out:
                _copy(response, out, total, progress_label or dest.name, started, limit, url)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the part file already holds the whole file (or more): start over
            part.unlink(missing_ok=True)
            return download(url, dest, progress_label=progress_label)
        raise DownloadFailed(f"{url} answered HTTP {e.code} {e.reason}.", url=url, status=e.code) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise DownloadFailed(f"Cannot download {url}: {getattr(e, 'reason', None) or e!r}. What arrived is kept in "
                             f"{part} and the next attempt resumes from it.", url=url) from None
    except OSError as e:  # the network errors are caught above: this is the file being written
        raise FileSystemError.from_os_error(e) from None
    os.replace(part, dest)
    return dest


def _copy(response: BinaryIO, out: BinaryIO, total: int | None, label: str, started: float, limit: float,
          url: str) -> None:
    from tqdm.auto import tqdm
    with tqdm(total=total, initial=out.tell(), unit="B", unit_scale=True, desc=label, leave=False,
              disable=None) as bar:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
            if time.monotonic() - started > limit:
                raise DownloadFailed(f"Downloading {url} took longer than {limit:.0f} s ({DEADLINE_ENV}); "
                                     f"{out.tell()} bytes are kept in {out.name} and the next attempt resumes "
                                     "from them.", url=url)
    if total and out.tell() != total:
        raise DownloadFailed(f"The connection to {url} closed after {out.tell()} of {total} bytes; the next attempt "
                             "resumes from them.", url=url)
