"""Upload a Hub-layout folder (`model.safetensors`, `config.json`, `README.md`) to the Hugging Face Hub (no torch).

The folder is checked before any request: the three files exist, `config.json`'s `ssld_zoo` block pins the weight
file's sha256 and size, and no pickle sits next to them (only safetensors are published). The upload goes through
the real `huggingface_hub` client, so `HF_ENDPOINT`, `HF_TOKEN` and `hf auth login` behave as it documents.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ssld_zoo.version import __version__
from ssld_zoo.errors import IntegrityError, InvalidWeightsError, PublishError
from ssld_zoo.files import file_sha256
from ssld_zoo.weights.hub import transport_errors
from ssld_zoo.weights.sources import CONFIG_FILE, WEIGHTS_FILE, read_folder_config
from ssld_zoo.weights.validation import check_config
from ssld_zoo.weights.validation import check_repo_id as check_hub_repo_id

README_FILE = "README.md"
PUBLISHED_FILES = (WEIGHTS_FILE, CONFIG_FILE, README_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pdparams")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_folder(folder: str | os.PathLike) -> str:
    """Check a Hub-layout folder before publishing it; returns the weight file's sha256.

    Raises `InvalidWeightsError` for a missing file, an unreadable `config.json` or a pickle in the folder, and
    `IntegrityError` when `model.safetensors` differs from the sha256/size that `config.json` pins.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InvalidWeightsError(f"'{folder}' is not a folder. Publish a Hub-layout folder, as written by "
                                  "`ssld-zoo download` or `ssld-zoo convert`.")
    missing = [name for name in PUBLISHED_FILES if not (path / name).is_file()]
    if missing:
        raise InvalidWeightsError(f"{path} lacks {', '.join(missing)}; a Hub-layout folder holds "
                                  f"{', '.join(PUBLISHED_FILES)}.")
    pickles = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise InvalidWeightsError(f"{path} holds pickle files ({', '.join(pickles)}); only safetensors are published. "
                                  "Move them out of the folder.")
    sha256, size = _pinned(path)
    weights = path / WEIGHTS_FILE
    actual_size = weights.stat().st_size
    actual = file_sha256(weights) if actual_size == size else None
    if actual != sha256:
        found = f"sha256 {actual}" if actual else f"{actual_size} bytes"
        raise IntegrityError(f"{weights} does not match {CONFIG_FILE} (it pins sha256 {sha256}, {size} bytes; the "
                             f"file has {found}). Re-create the folder instead of publishing it.")
    return sha256


def _pinned(folder: Path) -> tuple[str, int]:
    """The sha256 and size of `model.safetensors` that the folder's `config.json` pins."""
    pinned = check_config(read_folder_config(folder), where=str(folder / CONFIG_FILE)).get("ssld_zoo")
    sha256, size = (pinned.get("sha256"), pinned.get("size")) if isinstance(pinned, dict) else (None, None)
    if not (isinstance(sha256, str) and _SHA256.fullmatch(sha256) and isinstance(size, int)):
        raise InvalidWeightsError(f"{folder / CONFIG_FILE} has no `ssld_zoo` block with the sha256 and size of "
                                  f"{WEIGHTS_FILE}; write the folder with `ssld-zoo convert` or `ssld-zoo download`.")
    return sha256, size


def check_repo_id(repo_id: str) -> None:
    """Refuse anything but 'org/name' following the Hub's naming rules (`validation.check_repo_id`)."""
    try:
        check_hub_repo_id(repo_id)
    except InvalidWeightsError as e:
        raise PublishError(f"'{repo_id}' is not a Hub repo id. Use ORG/NAME: letters, digits, '-', '_' and '.', "
                           "at most 96 characters, not starting or ending with '-' or '.', no '--' or '..'.") from e


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _refusal(error: Exception, where: str, owner: str) -> str:
    """What an HTTP error from the Hub means for a publish, and what to do about it."""
    response = getattr(error, "response", None)
    status = response.status_code if response is not None else "error"
    reason = getattr(error, "server_message", None) or str(error).splitlines()[0]
    hint = (f"Log in with `hf auth login` or set HF_TOKEN, using a token with write access to '{owner}'."
            if status in (401, 403, 404) else "Fix the problem and publish again (unchanged files are not re-sent).")
    return f"The Hub refused the upload to {where} (HTTP {status}: {_one_line(reason)}). {hint}"


def publish_folder(folder: str | os.PathLike, repo_id: str, *, revision: str | None = None, private: bool = False,
                   token: str | None = None, commit_message: str | None = None) -> str:
    """Check `folder`, then upload its three Hub-layout files to branch `revision` (default main) of model repo
    `repo_id`, creating the repo (and the branch) when missing. Returns the 40-hex commit id to pin in the catalogue.

    When nothing changed since the branch head, no commit is made and the head's id is returned. Every failure is
    one `SsldZooError`: `InvalidWeightsError`/`IntegrityError` for the folder, `PublishError` for the repo id or Hub.
    """
    sha256 = check_folder(folder)
    check_repo_id(repo_id)
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError
    branch = revision or "main"
    where = f"branch '{branch}' of repo '{repo_id}' on {constants.ENDPOINT}"
    api = HfApi(endpoint=constants.ENDPOINT, token=token, library_name="ssld_zoo", library_version=__version__)
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=os.fspath(Path(folder).expanduser()), revision=branch,
                                 allow_patterns=list(PUBLISHED_FILES),
                                 commit_message=commit_message or f"Publish {WEIGHTS_FILE} (sha256 {sha256[:12]})")
    except HfHubHTTPError as e:
        raise PublishError(_refusal(e, where, repo_id.split("/")[0])) from e
    except ValueError as e:  # the client raises this when the Hub finds README.md's metadata invalid
        raise PublishError(f"The Hub rejected {folder} for {where}: {_one_line(e)} Fix README.md and publish "
                           "again.") from e
    except transport_errors() as e:
        raise PublishError(f"Cannot publish to {where}: the Hub could not be reached ({_one_line(e)}). Check your "
                           "network and HF_ENDPOINT.") from e
    return info.oid
