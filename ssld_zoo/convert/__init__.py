"""PaddleClas `.pdparams` → PyTorch state dicts for every zoo model, without Paddle.

    from ssld_zoo.convert import convert_pdparams
    state_dict = convert_pdparams("ResNet50_vd_ssld_pretrained.pdparams", "resnet50d_ssld")

The file is read by the restricted unpickler in `pdparams` (numpy arrays only, nothing executed), put in PyTorch
layout, renamed and folded by the model's family converter (one module per family), and checked strictly against the
model's own state dict. The equality of every converter with PaddleClas's own forward pass is proven by
`tests/test_convert_*.py`.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ssld_zoo.catalogue.registry import WeightEntry
from ssld_zoo.weights.hub import VerifiedFile
from ssld_zoo.errors import ConversionError
from ssld_zoo.weights.resolve import register_producer
from ssld_zoo.convert._base import CONVERTERS, Arrays, fit_to_model, to_torch_layout
from ssld_zoo.convert.pdparams import read_pdparams

if TYPE_CHECKING:
    import torch

__all__ = ["convert_pdparams", "convert_state_dict", "convert_to_folder", "read_pdparams", "supported_models"]

_NOT_FAMILIES = ("pdparams", "first_use", "paddle_check")  # modules of this package that convert no family


def _load_families() -> None:
    """Import every family module (each registers its converters)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name not in _NOT_FAMILIES:
            importlib.import_module(f"{__name__}.{module.name}")


def supported_models() -> list[str]:
    """Zoo names that have a PaddleClas converter."""
    _load_families()
    return sorted(CONVERTERS)


def convert_state_dict(paddle: Arrays, name: str) -> dict[str, "torch.Tensor"]:
    """Convert a PaddleClas state dict (`{structured name: array}`) to the state dict of zoo model `name`."""
    import torch

    from ssld_zoo.catalogue.registry import get_model_entry
    entry = get_model_entry(name)
    _load_families()
    if entry.name not in CONVERTERS:
        raise ConversionError(f"There is no PaddleClas converter for '{entry.name}'. Models with one: "
                              f"{', '.join(sorted(CONVERTERS))}.")
    arrays = fit_to_model(CONVERTERS[entry.name](to_torch_layout(paddle), entry.name), entry.name)
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


def convert_pdparams(path: str | os.PathLike, name: str) -> dict[str, "torch.Tensor"]:
    """Read a PaddleClas `.pdparams` file safely and convert it to the state dict of zoo model `name`."""
    return convert_state_dict(read_pdparams(path), name)


@dataclass(frozen=True)
class ConvertedFolder:
    """Where `convert_to_folder` wrote, and the hashes to record in the catalogue."""

    folder: Path
    sha256: str
    size: int
    origin_sha256: str


def convert_to_folder(pdparams: str | os.PathLike, name: str, out: str | os.PathLike, *,
                      origin_sha256: str | None = None) -> ConvertedFolder:
    """Convert a PaddleClas file into a Hub-layout folder `out` (`model.safetensors`, timm `config.json`, model card)
    for catalogue weight `name` (`model` or `model.tag`). Files appear only when complete. `origin_sha256` is the
    file's sha256 when the caller has already computed it."""
    from ssld_zoo.files import file_sha256, save_safetensors
    from ssld_zoo.weights.layout import temporary_weights_path, write_folder
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        from ssld_zoo.errors import FileSystemError
        raise FileSystemError(f"--out {folder} is a file; conversion writes a folder (model.safetensors, config.json, "
                              "README.md). Choose another path or remove the file.", path=str(folder))
    created = not folder.exists()
    tmp = temporary_weights_path(folder)  # before converting: an unwritable --out fails at once
    try:
        tensors = convert_pdparams(pdparams, name)
        origin_sha256 = origin_sha256 or file_sha256(pdparams)
        # byte-stable: the same PaddleClas file always gives the same sha256
        save_safetensors(tensors, tmp, {"format": "pt", "ssld_zoo_origin_sha256": origin_sha256})
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):  # it may no longer be empty
                folder.rmdir()
        raise
    sha256, size = write_folder(name, folder, tmp, origin_sha256=origin_sha256)
    return ConvertedFolder(folder, sha256, size, origin_sha256)


def _convert_on_first_use(weight: WeightEntry) -> VerifiedFile:
    from ssld_zoo.convert.first_use import converted_origin
    return converted_origin(weight)


register_producer("pdparams", _convert_on_first_use)  # `create(name, pretrained=True)` before publication
