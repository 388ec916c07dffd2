"""`create()` and `get_transform()`: catalogue entry → timm entrypoint → verified weights → model."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import timm
import torch

from ssld_zoo.models._stock import register_catalogue_models
from ssld_zoo.catalogue.registry import get_model_entry, get_weight_entry
from ssld_zoo.weights.sources import load_weights


def create(name: str, pretrained: bool | str | os.PathLike = False, *, num_classes: int | None = None,
           features_only: bool = False, out_indices: Sequence[int] | None = None,
           cache_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
           **kwargs: Any) -> torch.nn.Module:
    """Build a zoo model, optionally with weights.

    Args:
        name: a zoo model name (`ssld_zoo.list_models()`), optionally with a weight tag
            (`"resnet50d_ssld.ssld_v2_in1k"`).
        pretrained: False (random init), True (the catalogue's weights for the tag), a local `.safetensors` file, a
            folder in Hub layout (`model.safetensors` + `config.json`), or `"hf-hub:org/name[@revision]"`.
        num_classes: classifier size; a value that differs from the weights' resets the head.
        features_only: return a timm feature extractor (with `feature_info`) instead of a classifier.
        out_indices: which feature levels `features_only` returns.
        cache_dir: Hub cache folder (default: `HF_HUB_CACHE`).
        data_root: data folder for weights read from it, e.g. the CIFAR-10 teachers (default: `$SSLD_ZOO_DATA`).
        **kwargs: passed to `timm.create_model` (e.g. `drop_rate`, `in_chans`, `output_stride`).
    """
    get_model_entry(name)  # unknown names and tags fail here, with suggestions
    register_catalogue_models()  # entries from catalogues added after import
    options: dict[str, Any] = dict(kwargs, num_classes=num_classes, cache_dir=cache_dir)
    if data_root is not None:
        options.update(data_root=data_root)
    if features_only:
        options.update(features_only=True, out_indices=tuple(out_indices) if out_indices is not None else None)
    if pretrained is False or pretrained is None:
        return timm.create_model(name, pretrained=False, **options)
    if pretrained is True:
        return timm.create_model(name, pretrained=True, **options)  # the zoo entrypoint loads verified weights

    def build(path: Path, cfg: dict[str, Any]) -> torch.nn.Module:
        overlay = dict(cfg, file=os.fspath(path))
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **options)

    return load_weights(pretrained, get_weight_entry(name), build, cache_dir=cache_dir)
