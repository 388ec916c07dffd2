"""Plain HTTP(S) downloads (PaddleClas's host, a mirror of it): resumable, bounded in time and size, never
half-written.

A download goes to `DEST.part` and is published as `DEST` (`ssld_zoo.files.publish`) only when complete; an
interrupted one is resumed from the bytes already there with an HTTP `Range` request (a server that ignores it sends
the whole file again). Bounds, whatever the server does:

- time: every socket read waits at most `DOWNLOAD_TIMEOUT_S` seconds and never past the overall deadline
  (`SSLD_ZOO_DOWNLOAD_DEADLINE_S`, default `DEFAULT_DEADLINE_S`), which is checked before every read of the status
  line, the headers and the body, so a server that drips one byte a second is cut at the deadline;
- size: the caller's expected size (the catalogue's `origin.size`) where known, else `SSLD_ZOO_DOWNLOAD_MAX_BYTES`
  (default `DEFAULT_MAX_BYTES`). A `Content-Length` above it is refused before anything is written; a body that
  runs past it is cut and its `.part` removed;
- place: only `http:` and `https:` URLs, redirects included (no `file:`, `data:` or `ftp:`).

Imports no torch.
"""
from __future__ import annotations

import http.client
import io
import logging
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from ssld_zoo.errors import DownloadFailed, FileSystemError
from ssld_zoo.files import publish
from ssld_zoo.reporting import progress_bars
from ssld_zoo.settings import env_number
from ssld_zoo.version import __version__

DOWNLOAD_TIMEOUT_S = 60
DEFAULT_DEADLINE_S = 3 * 3600
DEADLINE_ENV = "SSLD_ZOO_DOWNLOAD_DEADLINE_S"
MAX_DEADLINE_S = 7 * 24 * 3600
DEFAULT_MAX_BYTES = 4 << 30  # the largest PaddleClas SSLD file is well under 1 GiB
MAX_BYTES_ENV = "SSLD_ZOO_DOWNLOAD_MAX_BYTES"
SCHEMES = ("http", "https")
_CHUNK = 64 << 10
_logger = logging.getLogger(__name__)


def deadline_s() -> float:
    """The overall time limit of one download (`SSLD_ZOO_DOWNLOAD_DEADLINE_S`)."""
    return env_number(DEADLINE_ENV, float(DEFAULT_DEADLINE_S), minimum=0.001, maximum=float(MAX_DEADLINE_S),
                      unit=" seconds")


def max_bytes() -> int:
    """The most bytes a download of unknown size may have (`SSLD_ZOO_DOWNLOAD_MAX_BYTES`)."""
    return env_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, minimum=1, maximum=1 << 50, integer=True, unit=" bytes")


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: Path, *, size: int | None = None, progress_label: str | None = None) -> Path:
    """Fetch `url` into `dest` (resuming `dest.part` when there is one); return `dest`. `size` is the file's known
    size, which caps what is accepted (else `max_bytes()`).

    Raises `DownloadFailed` (a URL that is not http(s), HTTP error, connection problem, timeout, deadline, a body
    too large or cut short) naming the URL, and `FileSystemError` when the file cannot be written.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise DownloadFailed(f"Refusing to download {url[:200]!r}: only http: and https: URLs are fetched, not "
                             f"{scheme or 'a bare path'}{':' if scheme else ''}.", url=url)
    limit = deadline_s()
    cap = size if size is not None else max_bytes()
    started = time.monotonic()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    offset = _resumable_bytes(part, cap)
    headers = {"User-Agent": f"ssld_zoo/{__version__}", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        with _opener(started + limit).open(urllib.request.Request(url, headers=headers),
                                           timeout=min(DOWNLOAD_TIMEOUT_S, limit)) as response:
            resumed = offset > 0 and response.status == 206
            length = _content_length(response, url)
            total = None if length is None else (offset + length if resumed else length)
            if total is not None and total > cap:
                raise DownloadFailed(f"{url} announces {total:,} bytes, more than the {_cap_text(cap, size)}; "
                                     "nothing was written.", url=url)
            with open(part, "ab" if resumed else "wb") as out:
                _copy(response, out, total, cap, progress_label or dest.name, url, limit, size)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the part file already holds the whole file (or more): start over
            part.unlink(missing_ok=True)
            return download(url, dest, size=size, progress_label=progress_label)
        raise DownloadFailed(f"{url} answered HTTP {e.code} {e.reason}.", url=url, status=e.code) from e
    except _DeadlinePassed as e:
        raise DownloadFailed(f"Downloading {url} took longer than {limit:g} s ({DEADLINE_ENV}); what arrived is kept "
                             f"in {part} and the next attempt resumes from it.", url=url) from e
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise DownloadFailed(f"Cannot download {url}: {getattr(e, 'reason', None) or e!r}. What arrived is kept in "
                             f"{part} and the next attempt resumes from it.", url=url) from e
    except OSError as e:  # the network errors are caught above: this is the file being written
        raise FileSystemError.from_os_error(e) from e
    publish(part, dest)
    return dest


def _resumable_bytes(part: Path, cap: int) -> int:
    """How many bytes of an earlier attempt `part` holds (0 when none). A `.part` that is not a regular file is
    refused; one already past the cap is removed."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise FileSystemError.from_os_error(e) from e
    if not stat.S_ISREG(info.st_mode):
        raise FileSystemError(f"{part} (an unfinished download) is not a regular file; remove it and try again.",
                              path=str(part))
    if info.st_size > cap:
        part.unlink()
        return 0
    return info.st_size


def _content_length(response: Any, url: str) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit() or len(value.strip()) > 20:
        raise DownloadFailed(f"{url} sent a malformed Content-Length ({value[:40]!r}).", url=url)
    return int(value)


def _cap_text(cap: int, size: int | None) -> str:
    return (f"{cap:,} bytes the catalogue records for it" if size is not None
            else f"{cap:,}-byte limit ({MAX_BYTES_ENV})")


def _copy(response: BinaryIO, out: BinaryIO, total: int | None, cap: int, label: str, url: str, limit: float,
          size: int | None) -> None:
    """Copy the body to `out` in small reads (each bounded by the deadline in `_DeadlineReader`), never past `cap`:
    a body that runs past it removes `out`'s file."""
    from tqdm.auto import tqdm
    with tqdm(total=total, initial=out.tell(), unit="B", unit_scale=True, desc=label, leave=False,
              disable=not progress_bars(_logger)) as bar:
        while chunk := response.read(_CHUNK):
            if out.tell() + len(chunk) > cap:
                out.close()
                os.unlink(out.name)
                raise DownloadFailed(f"{url} sent more than the {_cap_text(cap, size)}; the download was cut and "
                                     "its partial file removed.", url=url)
            out.write(chunk)
            bar.update(len(chunk))
    if total and out.tell() != total:
        raise DownloadFailed(f"The connection to {url} closed after {out.tell()} of {total} bytes; the next attempt "
                             "resumes from them.", url=url)


# -- the deadline on every socket read ---------------------------------------------------------------------------
class _DeadlinePassed(TimeoutError):
    """The overall deadline passed while waiting for the server."""


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side where every read waits at most `DOWNLOAD_TIMEOUT_S` and never past `deadline`
    (`time.monotonic()`), checked again before each read."""

    def __init__(self, sock: Any, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline
        self._raw = sock.makefile("rb", buffering=0)  # holds the socket open after the connection lets go of it

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed("the download deadline passed")
        self._sock.settimeout(min(DOWNLOAD_TIMEOUT_S, left))
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                raise _DeadlinePassed("the download deadline passed") from None
            raise


class _DeadlineSocket:
    """A connected socket whose `makefile("rb")` (what `http.client` reads the status line, headers and body from)
    is a `_DeadlineReader`; everything else is the socket's own."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode != "rb":
            return self._sock.makefile(mode, *args, **kwargs)
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _opener(deadline: float) -> urllib.request.OpenerDirector:
    """An opener for http(s) only (proxies from the environment, redirects to http(s) only), whose connections read
    through `_DeadlineSocket`."""

    class HTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            self.sock = _DeadlineSocket(self.sock, deadline)

    class HTTPSConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            self.sock = _DeadlineSocket(self.sock, deadline)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(HTTPConnection, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(HTTPSConnection, req)

    class RedirectHandler(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                             newurl: str) -> urllib.request.Request | None:
            if urllib.parse.urlsplit(newurl).scheme.lower() not in SCHEMES:
                raise DownloadFailed(f"{req.full_url} redirects to {newurl[:200]!r}; only http: and https: URLs are "
                                     "fetched.", url=req.full_url)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), HTTPHandler(), HTTPSHandler(), RedirectHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener
