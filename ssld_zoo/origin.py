"""First use before publication: the official PaddleClas file, downloaded once, pinned, converted and cached.

For a catalogue weight not yet on the Hub, `create(name, pretrained=True)` downloads its `.pdparams` from the URL in
the catalogue, converts it with `ssld_zoo.convert` and keeps the result as a Hub-layout folder::

    $SSLD_ZOO_CACHE (default $XDG_CACHE_HOME/ssld_zoo or ~/.cache/ssld_zoo)
    ├── paddle/ResNet50_vd_ssld_pretrained.pdparams        the downloaded file
    ├── paddle/ResNet50_vd_ssld_pretrained.pdparams.json   its sha256, recorded on first download
    └── converted/resnet50d_ssld.ssld_in1k/                model.safetensors + config.json + README.md

The PaddleClas file is checked against the catalogue's `origin.sha256` when one is pinned, else against the sha256
recorded on first download (trust on first use); the check runs on every use while the model is built, and on every
re-download. The converted file is checked against the sha256 in its `config.json`. `SSLD_ZOO_PADDLE_ENDPOINT`
replaces the PaddleClas host (for a mirror); `HF_HUB_OFFLINE=1` forbids downloads here too. Imports no torch.
"""
from __future__ import annotations

import datetime
import json
import os
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from . import __version__
from .errors import IntegrityError, OfflineError, WeightsUnavailableError
from .files import file_sha256, write_text_atomic
from .registry import WeightEntry
from .weights import WEIGHTS_FILE, use_folder

T = TypeVar("T")
PADDLE_HOST = "https://paddle-imagenet-models-name.bj.bcebos.com/"
DOWNLOAD_TIMEOUT_S = 60


def cache_root() -> Path:
    """Where converted first-use weights and their PaddleClas files are kept."""
    if os.environ.get("SSLD_ZOO_CACHE"):
        return Path(os.environ["SSLD_ZOO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "ssld_zoo"


def download_url(url: str) -> str:
    """The URL to fetch, with the PaddleClas host replaced by `SSLD_ZOO_PADDLE_ENDPOINT` when that is set."""
    endpoint = os.environ.get("SSLD_ZOO_PADDLE_ENDPOINT")
    if endpoint and url.startswith(PADDLE_HOST):
        return endpoint.rstrip("/") + "/" + url[len(PADDLE_HOST):]
    return url


def load_converted_origin(weight: WeightEntry, use: Callable[[Path], T]) -> T:
    """`use(path)` for the converted PaddleClas weights of `weight`, converting them first if needed."""
    root = cache_root()
    folder = root / "converted" / weight.full_name
    pdparams = root / "paddle" / weight.origin_url.rsplit("/", 1)[-1]
    if (folder / WEIGHTS_FILE).is_file():
        with ThreadPoolExecutor(max_workers=1) as pool:
            origin_check = pool.submit(check_pdparams, weight, pdparams) if pdparams.is_file() else None
            try:
                return use_folder(folder, use)
            except IntegrityError as e:
                warnings.warn(f"{e} Converting the PaddleClas file again.", stacklevel=2)
            finally:
                if origin_check is not None:
                    origin_check.result()
    sha256 = fetch_pdparams(weight, pdparams)
    from .convert import convert_to_folder
    convert_to_folder(pdparams, weight.full_name, folder, origin_sha256=sha256)
    return use_folder(folder, use)


def fetch_pdparams(weight: WeightEntry, pdparams: Path) -> str:
    """Make sure `pdparams` holds the verified PaddleClas file of `weight`, downloading it if absent; return its
    sha256."""
    if not pdparams.is_file():
        _download(weight, pdparams)
    return check_pdparams(weight, pdparams)


def check_pdparams(weight: WeightEntry, pdparams: Path) -> str:
    """Check the PaddleClas file against the catalogue's pinned sha256, else against (or into) the first-use record;
    return its sha256."""
    actual = file_sha256(pdparams)
    pinned = weight.data["origin"].get("sha256")
    record_path = pdparams.with_name(pdparams.name + ".json")
    if pinned:
        expected, since = pinned, "pinned in the ssld_zoo catalogue"
    elif record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        expected, since = record["sha256"], f"recorded when it was first downloaded ({record['recorded']})"
    else:
        record = {"url": weight.origin_url, "sha256": actual, "size": pdparams.stat().st_size,
                  "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "ssld_zoo": __version__}
        write_text_atomic(record_path, json.dumps(record, indent=2) + "\n")
        return actual
    if actual != expected:
        raise IntegrityError(
            f"The PaddleClas file {pdparams} for '{weight.full_name}' has sha256 {actual}, but {expected} was {since}. "
            f"It was modified or replaced at {weight.origin_url}. Delete {pdparams} to download it again; if the "
            "new download differs too, the published file changed: please report it.")
    return actual


def _download(weight: WeightEntry, dest: Path) -> None:
    from huggingface_hub import constants
    url = download_url(weight.origin_url)
    how = (f"On a machine with network access run `ssld-zoo download {weight.full_name} --to DIR` and use "
           f"pretrained='DIR/{weight.full_name}', or fetch {url} by hand and run `ssld-zoo convert --paddle FILE "
           f"--model {weight.full_name} --out DIR`; or set SSLD_ZOO_PADDLE_ENDPOINT to a reachable mirror.")
    if constants.HF_HUB_OFFLINE:
        raise OfflineError(f"Weights '{weight.full_name}' are not converted yet and HF_HUB_OFFLINE is set, so the "
                           f"PaddleClas file cannot be downloaded. {how}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"ssld_zoo/{__version__}"})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            _copy_with_progress(response, out, int(response.headers.get("Content-Length") or 0), dest.name)
        os.replace(tmp, dest)
    except urllib.error.HTTPError as e:
        raise WeightsUnavailableError(
            f"Weights '{weight.full_name}' are not on the Hub yet (status: {weight.status}), and their PaddleClas file "
            f"could not be fetched for conversion: {url} answered HTTP {e.code} {e.reason}. Check "
            "SSLD_ZOO_PADDLE_ENDPOINT if you use a mirror, or convert a copy you have with `ssld-zoo convert "
            f"--paddle FILE --model {weight.full_name} --out DIR` and pass pretrained='DIR'.") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise OfflineError(f"Weights '{weight.full_name}' are not on the Hub yet and their PaddleClas file cannot be "
                           f"downloaded from {url}: {reason}. {how}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _copy_with_progress(response, out, total: int, label: str) -> None:  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm
    with tqdm(total=total or None, unit="B", unit_scale=True, desc=label, leave=False, disable=None) as bar:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))
    if total and out.tell() != total:
        raise OSError(f"the connection closed after {out.tell()} of {total} bytes")
