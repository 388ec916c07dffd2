"""How zoo models plug into timm: pretrained cfgs built from the catalogue, and entrypoints that load verified weights.

Every zoo name is a timm entrypoint wrapped by `register_zoo_model`. The wrapper resolves the name's pretrained cfg
(tag and overlay included) and, for `pretrained=True` without an explicit weight file, fetches the catalogue's weights
through `ssld_zoo.weights.sources` (sha256-checked) before timm builds and loads the model.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Callable

from timm.models import PretrainedCfg, generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg

from ssld_zoo.catalogue import registry
from ssld_zoo.errors import InvalidWeightsError
from ssld_zoo.models.checks import check_finite, shapes_of, state_mismatch
from ssld_zoo.weights.sources import load_catalogue_weights, pretrained_cfg_for

ModelFn = Callable[..., Any]


def zoo_default_cfgs(arch_facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """timm `default_cfgs` for zoo names: each catalogue weight (default first) plus the family's architecture facts
    (`first_conv`, `classifier`, `pool_size`, ...)."""
    cfgs: dict[str, dict[str, Any] | PretrainedCfg] = {}
    for name, facts in arch_facts.items():
        for tag, weight in registry.get_model_entry(name).weights.items():
            cfgs[f"{name}.{tag}"] = {**facts, **pretrained_cfg_for(weight)}
    out = generate_default_cfgs(cfgs)
    for name in arch_facts:  # timm puts a tag with a weight source first; the catalogue's default comes first here
        tags, default = out[name].tags, registry.get_model_entry(name).default_weight
        tags.remove(default)
        tags.appendleft(default)
    return out


def register_zoo_model(fn: ModelFn) -> ModelFn:
    """`timm.models.register_model` for zoo names, adding catalogue-verified weight loading (`data_root=` names the
    data folder for weights read from it)."""
    name = fn.__name__

    @functools.wraps(fn)
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> Any:
        data_root = kwargs.pop("data_root", None)
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=kwargs.pop("pretrained_cfg", None),
                                     pretrained_cfg_overlay=kwargs.pop("pretrained_cfg_overlay", None))
        if not pretrained:
            return fn(pretrained=False, pretrained_cfg=cfg, **kwargs)
        if cfg.file or cfg.state_dict:
            return _load(fn, name, cfg, cfg.file or "the state dict", kwargs)
        weight = registry.get_model_entry(name).weight(cfg.tag)
        return load_catalogue_weights(
            weight, lambda path: _load(fn, name, replace(cfg, file=str(path)), weight.full_name, kwargs),
            cache_dir=kwargs.get("cache_dir"), data_root=data_root)

    return register_model(entrypoint)


def _load(fn: ModelFn, name: str, cfg: Any, source: str, kwargs: dict[str, Any]) -> Any:
    """`fn` built with the weights `cfg` names, checked to be finite; weights that do not fit the model (another
    model's, another head's) are one `InvalidWeightsError` naming the keys, not torch's multi-line RuntimeError."""
    try:
        model = fn(pretrained=True, pretrained_cfg=cfg, **kwargs)
    except RuntimeError:
        mismatch = _mismatch(fn, cfg, kwargs)
        if not mismatch:
            raise
        raise InvalidWeightsError(f"The weights from {source} do not fit model '{name}': {mismatch}. They are another "
                                  f"model's (or another num_classes'); pass weights made for '{name}'.",
                                  path=source) from None
    return check_finite(model, source)


def _mismatch(fn: ModelFn, cfg: Any, kwargs: dict[str, Any]) -> str:
    """How the tensors `cfg` names (a safetensors file, or a state dict) differ from the model's own: compared key by
    key and shape by shape (a model built on the meta device), "" when they agree or the file cannot be read."""
    import torch
    from safetensors import SafetensorError, safe_open
    with torch.device("meta"):
        own = shapes_of(fn(pretrained=False, pretrained_cfg=replace(cfg, file=None, state_dict=None),
                           **kwargs).state_dict())
    if cfg.state_dict:
        return state_mismatch(own, shapes_of(cfg.state_dict))
    try:
        with safe_open(cfg.file, "pt") as f:
            given = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (OSError, SafetensorError):
        return ""
    return state_mismatch(own, given)
