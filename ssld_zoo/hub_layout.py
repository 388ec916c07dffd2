"""Folders in Hugging Face Hub layout: `model.safetensors` + timm `config.json` + `README.md` model card (no torch).

The `config.json` is the one timm writes and reads (`architecture`, `num_classes`, `model_args`, `pretrained_cfg`),
plus an `ssld_zoo` block that pins the weight file's sha256 and size, so a copied folder is verified when loaded.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .cards import model_card
from .registry import get_model_entry, get_weight_entry
from .weights import CONFIG_FILE, WEIGHTS_FILE, load_catalogue_weights, pretrained_cfg_for


def timm_config(name: str, sha256: str | None, size: int) -> dict[str, Any]:
    """timm `config.json` for a catalogue weight (`name` or `name.tag`)."""
    entry, weight = get_model_entry(name), get_weight_entry(name)
    cfg = {k: v for k, v in pretrained_cfg_for(weight).items() if v is not None and k != "hf_hub_id"}
    cfg.update(architecture=entry.architecture, tag=weight.tag)
    config: dict[str, Any] = {"architecture": entry.architecture, "num_classes": entry.num_classes,
                              "pretrained_cfg": cfg}
    if entry.model_args:
        config["model_args"] = entry.model_args
    config["ssld_zoo"] = {"model": entry.name, "tag": weight.tag, "sha256": sha256, "size": size,
                          "hub_repo": weight.hub.repo_id, "hub_revision": weight.hub.revision}
    return config


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def download_folder(name: str, to: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch a catalogue weight (verified) into `to/<name>/` in Hub layout, for machines without network.

    Every file is written to a temporary name and renamed into place, so an interrupted run leaves no half-written
    folder contents.
    """
    entry, weight = get_model_entry(name), get_weight_entry(name)
    folder = Path(to).expanduser() / (entry.name if "." not in name else name)
    folder.mkdir(parents=True, exist_ok=True)

    def copy(source: Path) -> Path:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{WEIGHTS_FILE}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 8 << 20)
        return Path(tmp)

    tmp = load_catalogue_weights(weight, copy, cache_dir=cache_dir)
    try:
        size = tmp.stat().st_size  # verified against the catalogue's sha256 and size by load_catalogue_weights
        os.replace(tmp, folder / WEIGHTS_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    _write_text_atomic(folder / CONFIG_FILE, json.dumps(timm_config(name, weight.hub.sha256, size), indent=2) + "\n")
    _write_text_atomic(folder / "README.md", model_card(entry, weight))
    return folder
