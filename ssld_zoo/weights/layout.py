"""Folders in Hugging Face Hub layout: `model.safetensors` + timm `config.json` + `README.md` model card (no torch).

The `config.json` is the one timm writes and reads (`architecture`, `num_classes`, `model_args`, `pretrained_cfg`),
plus an `ssld_zoo` block that pins the weight file's sha256 and size, so a copied folder is verified when loaded.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ssld_zoo.errors import FileSystemError
from ssld_zoo.weights.cards import model_card
from ssld_zoo.files import file_sha256, publish, temporary_path, write_text_atomic
from ssld_zoo.catalogue.registry import get_model_entry, get_weight_entry
from ssld_zoo.weights.resolve import resolve
from ssld_zoo.weights.sources import CONFIG_FILE, WEIGHTS_FILE, pretrained_cfg_for

log = logging.getLogger(__name__)


def timm_config(name: str, sha256: str, size: int, origin_sha256: str | None = None) -> dict[str, Any]:
    """timm `config.json` for a catalogue weight (`name` or `name.tag`), pinning its weight file's sha256 and size
    (and, for converted weights, the sha256 of the PaddleClas file they came from)."""
    entry, weight = get_model_entry(name), get_weight_entry(name)
    cfg = {k: v for k, v in pretrained_cfg_for(weight).items() if v is not None and k != "hf_hub_id"}
    cfg.update(architecture=entry.architecture, tag=weight.tag)
    config: dict[str, Any] = {"architecture": entry.architecture, "num_classes": entry.num_classes,
                              "pretrained_cfg": cfg}
    if entry.model_args:
        config["model_args"] = entry.model_args
    config["ssld_zoo"] = {"model": entry.name, "tag": weight.tag, "sha256": sha256, "size": size,
                          "hub_repo": weight.hub.repo_id, "hub_revision": weight.hub.revision}
    if origin_sha256:
        config["ssld_zoo"]["origin"] = {"url": weight.origin_url, "sha256": origin_sha256}
    return config


def temporary_weights_path(folder: Path) -> Path:
    """A fresh temporary file in `folder` for `write_folder` to rename into `model.safetensors`."""
    return temporary_path(folder / WEIGHTS_FILE)


def place_weights(weights_tmp: Path, folder: Path) -> tuple[str, int]:
    """Hash a finished temporary weight file and rename it to `folder/model.safetensors` with mode 0644 (the
    temporary file is removed whatever happens); returns its sha256 and size."""
    try:
        sha256, size = file_sha256(weights_tmp), weights_tmp.stat().st_size
    except BaseException:
        weights_tmp.unlink(missing_ok=True)
        raise
    publish(weights_tmp, folder / WEIGHTS_FILE)
    return sha256, size


def write_folder(name: str, folder: Path, weights_tmp: Path, *, origin_sha256: str | None = None) -> tuple[str, int]:
    """Complete a Hub-layout folder for catalogue weight `name`: rename the finished temporary weight file (from
    `temporary_weights_path`) into `model.safetensors`, then write `config.json` and `README.md`, each atomically.

    Returns the weight file's sha256 and size. The temporary file is removed whatever happens.
    """
    entry, weight = get_model_entry(name), get_weight_entry(name)
    sha256, size = place_weights(weights_tmp, folder)
    config = timm_config(name, sha256, size, origin_sha256)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    write_text_atomic(folder / "README.md", model_card(entry, weight))
    return sha256, size


def download_folder(name: str, to: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                    force: bool = False) -> Path:
    """Fetch a catalogue weight (verified) into `to/<name>/` in Hub layout, for machines without network.

    Nothing is half-written: files appear under their final names only once complete and verified. A folder that
    already holds other weights is refused (`FileSystemError`) unless `force`; one that holds the same weights keeps
    them (and says so in a log line).
    """
    entry = get_model_entry(name)
    folder = Path(to).expanduser() / (entry.name if "." not in name else name)
    created = not folder.exists()
    tmp = temporary_weights_path(folder)
    try:
        shutil.copyfile(resolve(get_weight_entry(name), cache_dir=cache_dir).path, tmp)
        _check_replacing(folder / WEIGHTS_FILE, file_sha256(tmp), force)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created:
            folder.rmdir()
        raise
    write_folder(name, folder, tmp)
    return folder


def _check_replacing(existing: Path, sha256: str, force: bool) -> None:
    """Refuse to replace `existing` weights that differ from the new ones (sha256 `sha256`) unless `force`."""
    if not existing.is_file():
        return
    found = file_sha256(existing)
    if found == sha256:
        log.info("%s already holds these weights (sha256 %s); kept them.", existing, sha256)
    elif not force:
        raise FileSystemError(f"{existing} holds other weights (sha256 {found}, not {sha256}); pass --force to "
                              "replace them, or choose another --to.", path=str(existing), errno=errno.EEXIST)
    else:
        log.info("%s held other weights (sha256 %s); replaced them (--force).", existing, found)
