"""Downloads through the real Hugging Face Hub client, with the sha256 checked after every download and cache hit.

`hf_hub_download` is called per file with a pinned revision, so `HF_ENDPOINT` (mirrors), `HF_HUB_OFFLINE`,
`HF_HOME` / `HF_HUB_CACHE` and `cache_dir=` all behave as huggingface_hub documents. A cached file of a pinned commit
is served without any network request, and under `HF_HUB_OFFLINE` nothing asks the network.

A download that needs the network runs in a child process (this module's `_child_main`, started with the running
interpreter), which is killed when `SSLD_ZOO_HUB_DEADLINE_S` passes: huggingface_hub retries a server that accepts
connections and never answers, or drips bytes, for minutes per file with no overall limit of its own, and a thread
cannot be stopped. So nothing of a download runs on after its deadline, a later download in the same process starts
afresh, and this process's own huggingface_hub client is never touched. The child answers on its stdout with one
JSON line; a Hub error keeps huggingface_hub's own exception (its request id and the server's message) as the cause
(`HubClientFailure`). Nothing here imports torch.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssld_zoo.version import __version__
from ssld_zoo.files import file_sha256
from ssld_zoo.errors import (FileSystemError, HubClientFailure, IntegrityError, OfflineError, SsldZooError,
                             WeightsUnavailableError)
from ssld_zoo.catalogue.registry import HubFile
from ssld_zoo.settings import env_number

HUB_DEADLINE_S = 300
DEADLINE_ENV = "SSLD_ZOO_HUB_DEADLINE_S"
MAX_DEADLINE_S = 7 * 24 * 3600
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHILD_GRACE_S = 10  # a child whose parent died exits this long after the deadline on its own


def _about(hub: HubFile) -> dict[str, str | None]:
    """The structured attributes of an error about `hub`'s file."""
    return {"repo_id": hub.repo_id, "filename": hub.filename, "revision": hub.revision}


def _describe(hub: HubFile) -> str:
    return f"file '{hub.filename}' of repo '{hub.repo_id}' at revision '{hub.revision or 'main'}'"


def deadline_s() -> float:
    """The most one Hub download may take, retries included (`SSLD_ZOO_HUB_DEADLINE_S`, default `HUB_DEADLINE_S`)."""
    return env_number(DEADLINE_ENV, float(HUB_DEADLINE_S), minimum=0.001, maximum=float(MAX_DEADLINE_S),
                      unit=" seconds")


def hub_download(hub: HubFile, *, cache_dir: str | os.PathLike | None = None, force: bool = False,
                 model: str | None = None) -> Path:
    """`hf_hub_download` of one pinned file, within `deadline_s()`; Hub errors become one clear `SsldZooError` naming
    repo, file and revision."""
    from huggingface_hub import constants
    limit = deadline_s()
    cache = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE)
    if constants.HF_HUB_OFFLINE:  # the cache only: no network, nothing to bound
        return download_here(hub, cache, force=force, model=model)
    if not force and (cached := _cached_commit(hub, cache)) is not None:
        return cached
    return _download_in_child(hub, cache, force=force, model=model, limit=limit)


def _cached_commit(hub: HubFile, cache: Path) -> Path | None:
    """The cached file of a pinned commit, which `hf_hub_download` serves without asking the Hub; None otherwise."""
    from huggingface_hub import try_to_load_from_cache
    if hub.revision is None or not _COMMIT.fullmatch(hub.revision):
        return None
    found = try_to_load_from_cache(hub.repo_id, hub.filename, cache_dir=cache, revision=hub.revision)
    return Path(found) if isinstance(found, str) else None


def download_here(hub: HubFile, cache: Path, *, force: bool, model: str | None) -> Path:
    """`hf_hub_download` in this process, its errors mapped to one clear `SsldZooError` each (chained to
    huggingface_hub's own)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    what = _describe(hub)
    try:
        return Path(hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision, cache_dir=cache,
                                    force_download=force, endpoint=constants.ENDPOINT, library_name="ssld_zoo",
                                    library_version=__version__))
    except RevisionNotFoundError as e:
        raise WeightsUnavailableError(f"Revision '{hub.revision}' does not exist in repo '{hub.repo_id}' on "
                                      f"{constants.ENDPOINT} (needed for {what}). The pinned revision may have been "
                                      "removed; upgrade ssld_zoo or pin another revision.", **_about(hub)) from e
    except RepositoryNotFoundError as e:
        raise WeightsUnavailableError(f"Repo '{hub.repo_id}' was not found on {constants.ENDPOINT} (needed for "
                                      f"{what}). Check the name, HF_ENDPOINT, and your token if the repo is "
                                      "private.", **_about(hub)) from e
    except LocalEntryNotFoundError as e:
        reason = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE
                  else f"the Hub at {constants.ENDPOINT} could not be reached")
        name = model or "NAME"
        raise OfflineError(
            f"Cannot get {what}: {reason} and it is not in the Hub cache ({cache}). "
            f"On a machine with network access run `ssld-zoo download {name} --to DIR`, copy DIR here and use "
            f"`ssld_zoo.create('{name}', pretrained='DIR/{name}')`; or set HF_ENDPOINT to a reachable "
            "mirror.", **_about(hub)) from e
    except EntryNotFoundError as e:
        raise WeightsUnavailableError(f"The Hub at {constants.ENDPOINT} has no {what}.", **_about(hub)) from e
    except (HfHubHTTPError,) + transport_errors() as e:  # after the specific errors above (HfHubHTTPErrors too)
        if isinstance(e, OSError) and is_local_file_error(e):  # the cache cannot be written: not a network fault
            raise FileSystemError.from_os_error(e) from e
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status:  # the Hub or its file host answered with an error (huggingface_hub 0.x raises requests' own)
            raise WeightsUnavailableError(f"The Hub at {constants.ENDPOINT} (or its file host) answered HTTP "
                                          f"{status} for {what}. Try again later, or set HF_ENDPOINT to a mirror.",
                                          **_about(hub)) from e
        raise OfflineError(f"The connection to the Hub at {constants.ENDPOINT} broke while downloading {what} "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:160]}). Try again: the download "
                           "resumes where it stopped.", **_about(hub)) from e


def is_local_file_error(error: OSError) -> bool:
    """Whether `error` is the local file system refusing a read or write (an unwritable, read-only or full cache, a
    file where a folder is needed), which `transport_errors` would otherwise take for a network error."""
    import errno
    return isinstance(error, (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)) or (
        error.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT))


def transport_errors() -> tuple[type[Exception], ...]:
    """Network errors of the Hub client's HTTP library: `requests` (huggingface_hub 0.x) raises OSErrors,
    httpx/httpx2 (1.x/2.x) their own `HTTPError`; a body cut short is one of them."""
    return (OSError, *(sys.modules[name].HTTPError for name in ("httpx", "httpx2") if name in sys.modules))


# -- the download process ------------------------------------------------------------------------------------------
_ERRORS: dict[str, type[SsldZooError]] = {cls.__name__: cls for cls in (WeightsUnavailableError, OfflineError,
                                                                         FileSystemError)}


def _download_in_child(hub: HubFile, cache: Path, *, force: bool, model: str | None, limit: float) -> Path:
    """`download_here` in a child process, killed when `limit` seconds have passed."""
    from huggingface_hub import constants
    from huggingface_hub.utils import are_progress_bars_disabled
    request = {"hub": asdict(hub), "cache": str(cache), "force": force, "model": model, "limit": limit}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "HF_ENDPOINT": constants.ENDPOINT,
           "HF_HOME": str(constants.HF_HOME), "HF_HUB_OFFLINE": "0",
           **({"HF_HUB_DISABLE_PROGRESS_BARS": "1"} if are_progress_bars_disabled() else {})}
    child = subprocess.Popen([sys.executable, "-c", f"from {__name__} import _child_main; _child_main()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        try:
            out, _ = child.communicate(json.dumps(request), timeout=limit)
        except subprocess.TimeoutExpired as e:
            child.kill()
            out, _ = child.communicate()
            problem = _lines(out).get("problem")
            why = (f"its requests kept failing ({problem}) and huggingface_hub kept retrying" if problem
                   else "it accepts connections but does not answer, or too slowly")
            raise OfflineError(f"The Hub at {constants.ENDPOINT} did not deliver {_describe(hub)} within {limit:g} s "
                               f"({DEADLINE_ENV}): {why}. Check HF_ENDPOINT and the network, or set HF_HUB_OFFLINE=1 "
                               "to use the Hub cache only.", **_about(hub)) from e
    finally:
        if child.poll() is None:  # interrupted while waiting (Ctrl-C): the download stops with this process's wait
            child.kill()
            child.wait()
    answer = _lines(out)
    if "path" in answer:
        return Path(answer["path"])
    if "error" in answer:
        raise _rebuilt(answer["error"], hub)
    raise WeightsUnavailableError(f"The download process for {_describe(hub)} ended without an answer (exit status "
                                  f"{child.returncode}); its own error, if any, is above.", **_about(hub))


def _lines(out: str) -> dict[str, Any]:
    """The child's JSON lines on stdout, merged."""
    merged: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("{"):
            merged.update(json.loads(line))
    return merged


def _rebuilt(error: dict[str, Any], hub: HubFile) -> SsldZooError:
    """The child's `SsldZooError` again, its cause huggingface_hub's exception as `HubClientFailure`."""
    cls = _ERRORS.get(error["class"], WeightsUnavailableError)
    rebuilt = (FileSystemError(error["message"], path=error["path"], errno=error["errno"]) if cls is FileSystemError
               else cls(error["message"], **_about(hub)))
    cause = error.get("cause")
    if cause:
        rebuilt.__cause__ = HubClientFailure(cause["kind"], cause["message"], request_id=cause["request_id"],
                                             server_message=cause["server_message"])
    return rebuilt


def _child_main() -> None:
    """The download process: read the request on stdin, run `download_here`, answer on stdout (see
    `_download_in_child`)."""
    import signal
    import threading
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    request = json.loads(sys.stdin.read())
    watchdog = threading.Timer(request["limit"] + _CHILD_GRACE_S, os._exit, args=(124,))  # an orphan ends too
    watchdog.daemon = True
    watchdog.start()
    note = _FirstRetry()
    for name in _RETRY_LOGGERS:
        logging.getLogger(name).addFilter(note)
    try:
        answer: dict[str, Any] = {"path": str(download_here(HubFile(**request["hub"]), Path(request["cache"]),
                                                             force=request["force"], model=request["model"]))}
    except SsldZooError as e:
        cause = e.__cause__
        answer = {"error": {"class": type(e).__name__, "message": str(e), "path": e.path,
                            "errno": getattr(e, "errno", None),
                            "cause": cause and {"kind": f"{type(cause).__module__}.{type(cause).__qualname__}",
                                                "message": str(cause)[:4000],
                                                "request_id": getattr(cause, "request_id", None),
                                                "server_message": getattr(cause, "server_message", None)}}}
    print(json.dumps(answer), flush=True)


_RETRY_LOGGERS = ("huggingface_hub.utils._http", "huggingface_hub.file_download")


class _FirstRetry(logging.Filter):
    """In the download process: drops huggingface_hub's per-attempt retry lines ("'…' thrown while requesting",
    "Retrying in 1s [Retry 1/5]", "Trying to resume download...") and reports the first failure on stdout, so a
    download given up at the deadline can say why."""

    def __init__(self) -> None:
        super().__init__()
        self.noted = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        if not self.noted and not record.getMessage().startswith("Retrying in"):
            self.noted = True
            print(json.dumps({"problem": _failure_in(record)}), flush=True)
        return False


def _failure_in(record: logging.LogRecord) -> str:
    """The error in one of huggingface_hub's retry log records, without the URL."""
    if isinstance(record.args, tuple) and len(record.args) == 2:  # "Error while downloading from %s: %s ..."
        problem = str(record.args[1])
    else:  # "'<error>' thrown while requesting GET <url>" or "HTTP Error 500 thrown while requesting ..."
        problem = record.getMessage().split(" thrown while requesting")[0].strip("'")
    return " ".join(problem.split())[:160]


@dataclass(frozen=True)
class VerifiedFile:
    """A local file whose content was checked: `sha256` is the hash it matched (None when nothing pins it, e.g. a
    small Hub file stored in git rather than LFS)."""

    path: Path
    sha256: str | None


def check_file(path: Path, sha256: str | None, size: int | None) -> str | None:
    """What is wrong with `path` against the pinned `sha256`/`size` (None when it matches or nothing is pinned).
    Reads the file once; the size is compared first, so a truncated file is not hashed."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size is {actual_size} bytes, expected {size}"
    if sha256 is None:
        return None
    actual = file_sha256(path)
    return None if actual == sha256 else f"sha256 is {actual}, expected {sha256}"


def fetch_verified(hub: HubFile, *, cache_dir: str | os.PathLike | None = None,
                   model: str | None = None) -> VerifiedFile:
    """Download (or find in the cache) a pinned Hub file and check it before anyone reads it.

    The expected hash is the pinned `hub.sha256`, else the sha256 the Hub published for the file (its LFS blob name).
    A file whose hash or size is wrong is downloaded again once; if it is still wrong, `IntegrityError` names the
    repo, file, revision, expected and actual hash.
    """
    from huggingface_hub import constants
    path = hub_download(hub, cache_dir=cache_dir, model=model)
    expected = hub.sha256 or lfs_sha256(path)
    problem = check_file(path, expected, hub.size)
    if problem is None:
        return VerifiedFile(path, expected)
    if constants.HF_HUB_OFFLINE:
        raise IntegrityError(f"The Hub cache's copy of {_describe(hub)} at {path} is corrupt ({problem}) and cannot be "
                             "downloaded again because HF_HUB_OFFLINE is set. Unset it to repair the Hub cache.",
                             **_about(hub), path=str(path))
    path = hub_download(hub, cache_dir=cache_dir, force=True, model=model)
    problem = check_file(path, expected, hub.size)
    if problem is not None:
        raise IntegrityError(f"Downloaded {_describe(hub)} twice and it does not match the catalogue: {problem}. "
                             "The Hub copy or the pinned hash is wrong; please report it.", **_about(hub))
    return VerifiedFile(path, expected)


def lfs_sha256(path: Path) -> str | None:
    """The sha256 the Hub itself published for a cached LFS file (its blob name), or None if unknown."""
    blob = Path(os.path.realpath(path)).name
    return blob if _SHA256_NAME.match(blob) else None
