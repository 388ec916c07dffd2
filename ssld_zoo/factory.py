"""`create()` and `get_transform()`: catalogue entry → timm entrypoint → verified weights → model."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import timm
import torch

from .models._stock import register_catalogue_models
from .registry import get_model_entry, get_weight_entry
from .weights import load_weights


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


def preprocessing_config(name_or_model: str | torch.nn.Module) -> dict[str, Any]:
    """timm's data config (input size, crop_pct, interpolation, mean, std) of a zoo weight (`name` or `name.tag`) or
    of a model built by `create()`."""
    from timm.data import resolve_data_config
    from .weights import pretrained_cfg_for
    if isinstance(name_or_model, str):
        cfg = pretrained_cfg_for(get_weight_entry(name_or_model))
    else:
        cfg = dict(getattr(name_or_model, "pretrained_cfg", {}))
    return resolve_data_config({}, pretrained_cfg=cfg)


def get_transform(name_or_model: str | torch.nn.Module, train: bool = False, *, exact: bool = False) -> Any:
    """The preprocessing that belongs to a zoo weight (`name` or `name.tag`) or to a model built by `create()`.

    By default timm's transform (PIL decode, antialiased resize), which every timm pipeline uses. `exact=True` gives
    PaddleClas's own eval pipeline instead (OpenCV decode and resize, Paddle's rounding; `PaddleEvalTransform`),
    the input on which PaddleClas measured its reported accuracy; it takes file paths, encoded bytes, PIL images or
    RGB arrays.
    """
    if exact:
        if train:
            raise ValueError("exact=True is PaddleClas's eval preprocessing; there is no exact training transform.")
        from .data.paddle_preprocess import paddle_transform_for
        if isinstance(name_or_model, str):
            return paddle_transform_for(get_weight_entry(name_or_model).preprocessing)
        config = preprocessing_config(name_or_model)
        return paddle_transform_for({**config, "input_size": list(config["input_size"])})
    from timm.data import create_transform
    return create_transform(**preprocessing_config(name_or_model), is_training=train)
