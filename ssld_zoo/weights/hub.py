"""Downloads through the real Hugging Face Hub client, with the sha256 checked after every download and cache hit.

`hf_hub_download` is called per file with a pinned revision, so `HF_ENDPOINT` (mirrors), `HF_HUB_OFFLINE`,
`HF_HOME` / `HF_HUB_CACHE` and `cache_dir=` all behave as huggingface_hub documents. A cached file of a pinned commit
is served without any network request. Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ssld_zoo.version import __version__
from ssld_zoo.files import file_sha256
from ssld_zoo.errors import FileSystemError, IntegrityError, OfflineError, WeightsUnavailableError
from ssld_zoo.catalogue.registry import HubFile

T = TypeVar("T")
HUB_DEADLINE_S = 300
DEADLINE_ENV = "SSLD_ZOO_HUB_DEADLINE_S"
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


def _about(hub: HubFile) -> dict[str, str | None]:
    """The structured attributes of an error about `hub`'s file."""
    return {"repo_id": hub.repo_id, "filename": hub.filename, "revision": hub.revision}


def _describe(hub: HubFile) -> str:
    return f"file '{hub.filename}' of repo '{hub.repo_id}' at revision '{hub.revision or 'main'}'"


def hub_download(hub: HubFile, *, cache_dir: str | os.PathLike | None = None, force: bool = False,
                 model: str | None = None) -> Path:
    """`hf_hub_download` of one pinned file; Hub errors become one clear `SsldZooError` naming repo, file and
    revision."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    what = _describe(hub)
    cache = None if cache_dir is None else Path(cache_dir)
    try:
        return Path(_within_deadline(lambda: hf_hub_download(
            hub.repo_id, hub.filename, revision=hub.revision, cache_dir=cache, force_download=force,
            endpoint=constants.ENDPOINT, library_name="ssld_zoo", library_version=__version__), what))
    except RevisionNotFoundError:
        raise WeightsUnavailableError(f"Revision '{hub.revision}' does not exist in repo '{hub.repo_id}' on "
                                      f"{constants.ENDPOINT} (needed for {what}). The pinned revision may have been "
                                      "removed; upgrade ssld_zoo or pin another revision.", **_about(hub)) from None
    except RepositoryNotFoundError:
        raise WeightsUnavailableError(f"Repo '{hub.repo_id}' was not found on {constants.ENDPOINT} (needed for "
                                      f"{what}). Check the name, HF_ENDPOINT, and your token if the repo is "
                                      "private.", **_about(hub)) from None
    except LocalEntryNotFoundError:
        reason = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE
                  else f"the Hub at {constants.ENDPOINT} could not be reached")
        name = model or "NAME"
        raise OfflineError(
            f"Cannot get {what}: {reason} and it is not in the cache ({cache_dir or constants.HF_HUB_CACHE}). "
            f"On a machine with network access run `ssld-zoo download {name} --to DIR`, copy DIR here and use "
            f"`ssld_zoo.create('{name}', pretrained='DIR/{name}')`; or set HF_ENDPOINT to a reachable "
            "mirror.", **_about(hub)) from None
    except EntryNotFoundError:
        raise WeightsUnavailableError(f"The Hub at {constants.ENDPOINT} has no {what}.", **_about(hub)) from None
    except (HfHubHTTPError,) + transport_errors() as e:  # after the specific errors above (HfHubHTTPErrors too)
        if isinstance(e, OSError) and is_local_file_error(e):  # the cache cannot be written: not a network fault
            raise FileSystemError.from_os_error(e) from None
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status:  # the Hub or its file host answered with an error (huggingface_hub 0.x raises requests' own)
            raise WeightsUnavailableError(f"The Hub at {constants.ENDPOINT} (or its file host) answered HTTP "
                                          f"{status} for {what}. Try again later, or set HF_ENDPOINT to a mirror.",
                                          **_about(hub)) from None
        raise OfflineError(f"The connection to the Hub at {constants.ENDPOINT} broke while downloading {what} "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:160]}). Try again: the download "
                           "resumes where it stopped.", **_about(hub)) from None


def is_local_file_error(error: OSError) -> bool:
    """Whether `error` is the local file system refusing a read or write (an unwritable, read-only or full cache, a
    file where a folder is needed), which `transport_errors` would otherwise take for a network error."""
    import errno
    return isinstance(error, (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)) or (
        error.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT))


def transport_errors() -> tuple[type[Exception], ...]:
    """Network errors of the Hub client's HTTP library: `requests` (huggingface_hub 0.x) raises OSErrors,
    httpx/httpx2 (1.x/2.x) their own `HTTPError`; a body cut short is one of them."""
    import sys
    return (OSError, *(sys.modules[name].HTTPError for name in ("httpx", "httpx2") if name in sys.modules))


def deadline_s() -> float:
    """The most one Hub download may take, retries included (`SSLD_ZOO_HUB_DEADLINE_S`, default `HUB_DEADLINE_S`)."""
    value = os.environ.get(DEADLINE_ENV)
    try:
        seconds = float(value) if value else HUB_DEADLINE_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise WeightsUnavailableError(f"{DEADLINE_ENV}={value!r} is not a positive number of seconds.")
    return seconds


def _within_deadline(call: Callable[[], T], what: str) -> T:
    """`call()` in a daemon thread, given up after `deadline_s()`: huggingface_hub retries a server that accepts
    connections and never answers for minutes per file, with no overall limit of its own."""
    from huggingface_hub import constants
    limit = deadline_s()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, name="ssld_zoo-hub-download", daemon=True)
    with _retries_noted_once(limit) as note:
        worker.start()
        worker.join(limit)
    if worker.is_alive():
        why = (f"its requests kept failing ({note.problem}) and huggingface_hub kept retrying" if note.problem
               else "it accepts connections but does not answer")
        raise OfflineError(f"The Hub at {constants.ENDPOINT} did not deliver {what} within {limit:.0f} s "
                           f"({DEADLINE_ENV}): {why}. Check HF_ENDPOINT and the network, or set HF_HUB_OFFLINE=1 to "
                           "use cached files only.")
    if "error" in box:
        raise box["error"]
    return box["result"]


_RETRY_LOGGERS = ("huggingface_hub.utils._http", "huggingface_hub.file_download")


class _FirstRetryAsWarning(logging.Filter):
    """Drops huggingface_hub's per-attempt retry log lines ("'…' thrown while requesting", "Retrying in 1s [Retry
    1/5]", "Trying to resume download...") and turns the first failure into one warning of ssld_zoo's own, which the
    CLI prints as one `ssld-zoo: warning:` line (files downloaded side by side failing alike give the same text, which
    Python shows once)."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.limit = limit
        self.problem: str | None = None  # the first failure logged

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        if self.problem is None and not record.getMessage().startswith("Retrying in"):
            self.problem = _failure_in(record)
            from huggingface_hub import constants
            warnings.warn(f"Requests to the Hub at {constants.ENDPOINT} fail ({self.problem}); huggingface_hub "
                          f"retries them, for at most {self.limit:.0f} s in all ({DEADLINE_ENV}).", stacklevel=1)
        return False


def _failure_in(record: logging.LogRecord) -> str:
    """The error in one of huggingface_hub's retry log records, without the URL."""
    if isinstance(record.args, tuple) and len(record.args) == 2:  # "Error while downloading from %s: %s ..."
        problem = str(record.args[1])
    else:  # "'<error>' thrown while requesting GET <url>" or "HTTP Error 500 thrown while requesting ..."
        problem = record.getMessage().split(" thrown while requesting")[0].strip("'")
    return " ".join(problem.split())[:160]


@contextlib.contextmanager
def _retries_noted_once(limit: float) -> Iterator[_FirstRetryAsWarning]:
    """While one download runs, huggingface_hub's retry chatter becomes at most one warning (`_FirstRetryAsWarning`)."""
    note = _FirstRetryAsWarning(limit)
    loggers = [logging.getLogger(name) for name in _RETRY_LOGGERS]
    for logger in loggers:
        logger.addFilter(note)
    try:
        yield note
    finally:
        for logger in loggers:
            logger.removeFilter(note)


def use_verified(path: Path, use: Callable[[Path], T], sha256: str | None,
                 size: int | None) -> tuple[T | None, str | None]:
    """Run `use(path)` while the file is hashed on another thread.

    Returns `(result, None)` when the file matches `sha256`/`size` (or no hash is pinned), and `(None, problem)`
    when it does not; an exception from `use` is re-raised only when the file itself is intact.
    """
    if sha256 is None:
        return use(path), None
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return None, f"size is {actual_size} bytes, expected {size}"
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(file_sha256, path)
        try:
            result = use(path)
        except Exception:
            if digest.result() == sha256:
                raise
            result = None
        actual = digest.result()
    if actual != sha256:
        return None, f"sha256 is {actual}, expected {sha256}"
    return result, None


def fetch_verified(hub: HubFile, use: Callable[[Path], T], *, cache_dir: str | os.PathLike | None = None,
                   model: str | None = None) -> T:
    """Download (or find in the cache) a pinned Hub file, check it, and return `use(local_path)`.

    The expected hash is the pinned `hub.sha256`, else the sha256 the Hub published for the file (its LFS blob name).
    A file whose hash or size is wrong is downloaded again once; if it is still wrong, `IntegrityError` names the
    repo, file, revision, expected and actual hash.
    """
    from huggingface_hub import constants
    path = hub_download(hub, cache_dir=cache_dir, model=model)
    if hub.sha256 is None:
        hub = replace(hub, sha256=lfs_sha256(path))
    result, problem = use_verified(path, use, hub.sha256, hub.size)
    if problem is None:
        return result  # type: ignore[return-value]
    if constants.HF_HUB_OFFLINE:
        raise IntegrityError(f"The cached copy of {_describe(hub)} at {path} is corrupt ({problem}) and cannot be "
                             "downloaded again because HF_HUB_OFFLINE is set. Unset it to repair the cache.",
                             **_about(hub), path=str(path))
    path = hub_download(hub, cache_dir=cache_dir, force=True, model=model)
    result, problem = use_verified(path, use, hub.sha256, hub.size)
    if problem is not None:
        raise IntegrityError(f"Downloaded {_describe(hub)} twice and it does not match the catalogue: {problem}. "
                             "The Hub copy or the pinned hash is wrong; please report it.", **_about(hub))
    return result  # type: ignore[return-value]


def lfs_sha256(path: Path) -> str | None:
    """The sha256 the Hub itself published for a cached LFS file (its blob name), or None if unknown."""
    blob = Path(os.path.realpath(path)).name
    return blob if _SHA256_NAME.match(blob) else None
