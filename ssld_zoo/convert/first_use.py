"""First use before publication: the official PaddleClas file, downloaded once, pinned, converted and kept in the
conversion cache.

For a catalogue weight not yet on the Hub, `create(name, pretrained=True)` downloads its `.pdparams` from the URL in
the catalogue, converts it with `ssld_zoo.convert` and keeps the result as a Hub-layout folder in the conversion
cache (`weights.resolve.conversion_cache_root`)::

    $SSLD_ZOO_CACHE (default $XDG_CACHE_HOME/ssld_zoo or ~/.cache/ssld_zoo)
    ├── paddle/ResNet50_vd_ssld_pretrained.pdparams        the downloaded file
    ├── paddle/ResNet50_vd_ssld_pretrained.pdparams.json   its sha256 and the converted file's, recorded after the
    │                                                      first successful conversion
    ├── converted/resnet50d_ssld.ssld_in1k/                model.safetensors + config.json + README.md
    └── locks/resnet50d_ssld.ssld_in1k.lock                one process converts at a time

`converted_origin(weight)` is the producer that `ssld_zoo.weights.resolve` asks for such a weight: it returns the
verified converted file. The PaddleClas file is checked against the catalogue's `origin.sha256` when one is pinned,
else against the sha256 recorded by its first successful conversion (trust on first use: a file that cannot be read
or converted is deleted, never recorded), whenever it is converted (after a download, or again after the converted
file was damaged). The converted file, the one that is loaded, is checked against the sha256 in that record on
every use, so a warm `create()` hashes it and nothing else; the record is kept outside the folder, so a damaged or
edited folder (its `config.json` removed included) is converted again, never loaded unverified.
`SSLD_ZOO_PADDLE_ENDPOINT` replaces the PaddleClas host (for a mirror); `HF_HUB_OFFLINE=1` forbids downloads here
too. Imports no torch.
"""
from __future__ import annotations

import datetime
import json
import os
import warnings
from pathlib import Path
from typing import Any

from ssld_zoo.version import __version__
from ssld_zoo.weights import hub
from ssld_zoo.errors import ConversionError, IntegrityError, InvalidWeightsError, OfflineError, WeightsUnavailableError
from ssld_zoo.files import file_sha256, write_text_atomic
from ssld_zoo.catalogue.registry import WeightEntry
from ssld_zoo.weights.hub import VerifiedFile
from ssld_zoo.weights.resolve import conversion_cache_root
from ssld_zoo.weights.sources import WEIGHTS_FILE

PADDLE_HOST = "https://paddle-imagenet-models-name.bj.bcebos.com/"


def download_url(url: str) -> str:
    """The URL to fetch, with the PaddleClas host replaced by `SSLD_ZOO_PADDLE_ENDPOINT` when that is set."""
    endpoint = os.environ.get("SSLD_ZOO_PADDLE_ENDPOINT")
    if endpoint and url.startswith(PADDLE_HOST):
        return endpoint.rstrip("/") + "/" + url[len(PADDLE_HOST):]
    return url


def converted_origin(weight: WeightEntry) -> VerifiedFile:
    """The verified converted file of `weight`'s PaddleClas weights, converting them first if needed.

    One process converts at a time (a lock per weight); the others wait and then use its result.
    """
    paths = _Paths(weight)
    found = _cached(weight, paths)
    if found is not None:
        return found
    from filelock import FileLock
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(paths.lock):
        found = _cached(weight, paths)  # another process may have converted it while this one waited
        return found if found is not None else _convert(weight, paths)


class _Paths:
    """Where one weight's first-use files live under `conversion_cache_root()`."""

    def __init__(self, weight: WeightEntry) -> None:
        assert weight.origin_url is not None
        root = conversion_cache_root()
        self.folder = root / "converted" / weight.full_name
        self.pdparams = root / "paddle" / weight.origin_url.rsplit("/", 1)[-1]
        self.record = self.pdparams.with_name(self.pdparams.name + ".json")
        self.lock = root / "locks" / f"{weight.full_name}.lock"


def _read_record(weight: WeightEntry, paths: _Paths) -> dict[str, Any] | None:
    """The first-use record (written only after a successful conversion), or None when there is none or it is
    unreadable (then the weight is downloaded and converted again)."""
    if not paths.record.is_file():
        return None
    try:
        record = json.loads(paths.record.read_text(encoding="utf-8"))
        if isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("sha256", "recorded")) and (
                isinstance(record.get("converted"), dict) and isinstance(record["converted"].get("sha256"), str)):
            return record
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    warnings.warn(f"The first-use record {paths.record} of '{weight.full_name}' is damaged; downloading and "
                  "converting the PaddleClas file again.", stacklevel=3)
    for path in (paths.record, paths.pdparams):
        path.unlink(missing_ok=True)
    return None


def _cached(weight: WeightEntry, paths: _Paths) -> VerifiedFile | None:
    """The conversion in the conversion cache, verified against the record kept beside the PaddleClas file (not
    inside the folder, which a damaged copy could change); None when there is none or it does not match."""
    record = _read_record(weight, paths)
    weights = paths.folder / WEIGHTS_FILE
    if record is None or not weights.is_file():
        return None
    expected = record["converted"]["sha256"]
    problem = hub.check_file(weights, expected, record["converted"].get("size"))
    if problem is None:
        return VerifiedFile(weights, expected)
    warnings.warn(f"{weights} does not match its first-use record ({problem}). Converting the PaddleClas file "
                  "again.", stacklevel=3)
    return None


def _convert(weight: WeightEntry, paths: _Paths) -> VerifiedFile:
    """Download (if needed) and verify the PaddleClas file, convert it, and only then record it as trusted."""
    if not paths.pdparams.is_file():
        _download(weight, paths.pdparams)
    sha256 = check_pdparams(weight, paths.pdparams)
    from ssld_zoo.convert import convert_to_folder
    try:
        converted = convert_to_folder(paths.pdparams, weight.full_name, paths.folder, origin_sha256=sha256)
    except (InvalidWeightsError, ConversionError) as e:
        paths.pdparams.unlink(missing_ok=True)  # never trusted: the next attempt downloads it again
        raise type(e)(f"{e} The downloaded file was removed ({paths.pdparams}), so the next attempt downloads it "
                      "again; if the host keeps serving it, use a mirror (SSLD_ZOO_PADDLE_ENDPOINT) or convert a "
                      "good copy with `ssld-zoo convert`.") from e
    record = {"url": weight.origin_url, "sha256": sha256, "size": paths.pdparams.stat().st_size,
              "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "ssld_zoo": __version__, "converted": {"sha256": converted.sha256, "size": converted.size}}
    write_text_atomic(paths.record, json.dumps(record, indent=2) + "\n")
    return VerifiedFile(converted.folder / WEIGHTS_FILE, converted.sha256)


def check_pdparams(weight: WeightEntry, pdparams: Path) -> str:
    """Check the PaddleClas file against the catalogue's pinned sha256, else against the first-use record (when a
    conversion has recorded one); return its sha256."""
    actual = file_sha256(pdparams)
    pinned = weight.data["origin"].get("sha256")
    record_path = pdparams.with_name(pdparams.name + ".json")
    if pinned:
        expected, since = pinned, "pinned in the ssld_zoo catalogue"
    else:
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            expected, since = record["sha256"], f"recorded when it was first converted ({record['recorded']})"
        except (OSError, ValueError, KeyError, TypeError):
            return actual  # nothing trusted yet: the conversion that follows records it
    if actual != expected:
        raise IntegrityError(
            f"The PaddleClas file {pdparams} for '{weight.full_name}' has sha256 {actual}, but {expected} was {since}. "
            f"It was modified or replaced at {weight.origin_url}. Delete {pdparams} to download it again; if the "
            "new download differs too, the published file changed: please report it.")
    return actual


def _download(weight: WeightEntry, dest: Path) -> None:
    from huggingface_hub import constants
    assert weight.origin_url is not None
    url = download_url(weight.origin_url)
    how = (f"On a machine with network access run `ssld-zoo download {weight.full_name} --to DIR` and use "
           f"pretrained='DIR/{weight.full_name}', or fetch {url} by hand and run `ssld-zoo convert --paddle FILE "
           f"--model {weight.full_name} --out DIR`; or set SSLD_ZOO_PADDLE_ENDPOINT to a reachable mirror.")
    if constants.HF_HUB_OFFLINE:
        raise OfflineError(f"Weights '{weight.full_name}' are not converted yet and HF_HUB_OFFLINE is set, so the "
                           f"PaddleClas file cannot be downloaded. {how}")
    from ssld_zoo.weights.download import DownloadFailed, download
    try:
        download(url, dest, size=weight.data["origin"].get("size"))
    except DownloadFailed as e:
        if e.status is not None:
            raise WeightsUnavailableError(
                f"Weights '{weight.full_name}' are not on the Hub yet (status: {weight.status}), and their PaddleClas "
                f"file could not be fetched for conversion: {e} Check SSLD_ZOO_PADDLE_ENDPOINT if you use a mirror, "
                f"or convert a copy you have with `ssld-zoo convert --paddle FILE --model {weight.full_name} --out "
                "DIR` and pass pretrained='DIR'.") from e
        raise OfflineError(f"Weights '{weight.full_name}' are not on the Hub yet and their PaddleClas file cannot be "
                           f"downloaded: {e} {how}") from e
