"""`create()` and `load_model()`: a weights source → `weights.resolve` (a verified local file) → timm builds the
model and loads that file. Every command that loads weights goes through `load_model`."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import timm
import torch

from ssld_zoo.catalogue.registry import get_model_entry, get_weight_entry
from ssld_zoo.models._stock import register_catalogue_models
from ssld_zoo.models._zoo import build_checked
from ssld_zoo.models.checks import check_model_args
from ssld_zoo.weights.resolve import Resolved, resolve
from ssld_zoo.errors import ArgumentTypeError, InvalidWeightsError
from ssld_zoo.weights.sources import CONFIG_FILE, pretrained_cfg_for
from ssld_zoo.weights.validation import MAX_CLASSES


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
    weight = get_weight_entry(name)  # unknown names and tags fail here, with suggestions
    if num_classes is not None and not (isinstance(num_classes, int) and not isinstance(num_classes, bool)
                                        and 0 <= num_classes <= MAX_CLASSES):
        raise ArgumentTypeError(f"num_classes must be a whole number from 0 to {MAX_CLASSES:,} (or None for the "
                                f"weights' own), not {num_classes!r}.", key="num_classes")
    options: dict[str, Any] = dict(kwargs, num_classes=num_classes)
    if features_only:
        options.update(features_only=True, out_indices=tuple(out_indices) if out_indices is not None else None)
    if pretrained is False or pretrained is None:
        register_catalogue_models()  # entries from catalogues added or changed since the last call
        return timm.create_model(name, pretrained=False, **options)
    if pretrained is True:
        weights = resolve(weight, cache_dir=cache_dir, data_root=data_root)
        return load_model(weights, name, **options)
    weights = resolve(pretrained, catalogue=False, cache_dir=cache_dir, data_root=data_root)
    return load_model(weights, name, cfg=pretrained_cfg_for(weight), **options)  # the file's own cfg wins


def load_model(weights: Resolved, name: str | None = None, *, cfg: Mapping[str, Any] | None = None,
               **kwargs: Any) -> torch.nn.Module:
    """The model `name` (a zoo or timm name; default: the one the weights were made for, with their `model_args`)
    with the verified file `weights` loaded by timm's loader: a head of another `num_classes` than the weights' is
    reset, `in_chans` adapted, `features_only` wrapped. Weights that do not fit are one `InvalidWeightsError` naming
    the keys; NaN or infinite values are refused.

    The weights' timm cfg (preprocessing, classes) is `cfg` overlaid with the file's own. A file that states no
    `num_classes` is taken to have the requested one (so it is loaded strictly, never with its head dropped)."""
    if name is None:
        if weights.model_name is None:
            raise InvalidWeightsError(f"The weights from {weights.source} do not say which model they are for: their "
                                      "config.json needs a timm 'architecture'.", path=weights.source)
        name = weights.model_name
        if weights.weight is None:  # an architecture: built with the file's own arguments
            kwargs = {**model_args_of(weights), **kwargs}
        else:  # a catalogue weight: its cfg, the file's own over it
            cfg = {**pretrained_cfg_for(weights.weight), **(cfg or {})}
    register_catalogue_models()  # entries from catalogues added or changed since the last call
    overlay = {**(cfg or {}), **weights.pretrained_cfg, "file": os.fspath(weights.path)}
    if "num_classes" not in overlay and kwargs.get("num_classes") is not None:
        overlay["num_classes"] = kwargs["num_classes"]
    if _is_zoo_model(name):  # its entrypoint loads with the same checks (`_zoo.build_checked`)
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    without_file = {k: v for k, v in overlay.items() if k != "file"}
    return build_checked(lambda loaded: timm.create_model(
        name, pretrained=loaded, pretrained_cfg_overlay=overlay if loaded else without_file, **kwargs),
        name, weights.source, overlay["file"])


def model_args_of(weights: Resolved) -> dict[str, Any]:
    """The `model_args` of the `config.json` that came with `weights`, checked against the constructor arguments of
    its architecture before they reach timm (nothing in them can steer loading)."""
    if not weights.model_args:
        return {}
    return check_model_args(weights.architecture or "", weights.model_args,
                            where=f"{CONFIG_FILE} of {weights.source}")


def _is_zoo_model(name: str) -> bool:
    try:
        get_model_entry(name)
    except KeyError:
        return False
    return True
