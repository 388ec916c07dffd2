"""How zoo models plug into timm: pretrained cfgs built from the catalogue, entrypoints that load verified weights, and
registrations kept in step with the catalogue.

Every zoo name is a timm entrypoint wrapped by `register_zoo_model`. The wrapper resolves the name's pretrained cfg
(tag and overlay included); for `pretrained=True` without a weight file it gets the catalogue weight's verified file
from `ssld_zoo.weights.resolve` and builds the model from it. timm keeps the cfgs and tags it was given at
registration, so `sync_with_catalogue` registers a name again when `add_catalogue()` has changed its entry.
"""
from __future__ import annotations

import functools
import sys
import warnings
from dataclasses import replace
from typing import Any, Callable, Mapping

from timm.models import PretrainedCfg, generate_default_cfgs, register_model, resolve_pretrained_cfg

from ssld_zoo.catalogue import registry
from ssld_zoo.errors import InvalidWeightsError, UnknownModelError
from ssld_zoo.models.checks import check_finite, shapes_of, state_mismatch
from ssld_zoo.weights.resolve import resolve
from ssld_zoo.weights.sources import pretrained_cfg_for

ModelFn = Callable[..., Any]
ArchFacts = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]  # facts, or facts of the entry's architecture

_FACTS: dict[str, ArchFacts] = {}  # zoo name -> the architecture facts its default cfgs are built with
_REGISTERED: dict[str, registry.ModelEntry] = {}  # zoo name -> the catalogue entry timm holds its cfgs from
_ENTRYPOINTS: dict[str, ModelFn] = {}  # zoo name -> its registered (wrapped) entrypoint


def zoo_default_cfgs(arch_facts: Mapping[str, ArchFacts]) -> dict[str, Any]:
    """timm `default_cfgs` for zoo names: each catalogue weight (default first) plus the family's architecture facts
    (`first_conv`, `classifier`, `pool_size`, ...; or a function of the entry's architecture that gives them)."""
    cfgs: dict[str, dict[str, Any] | PretrainedCfg] = {}
    for name, facts in arch_facts.items():
        entry = registry.get_model_entry(name)
        _FACTS[name], _REGISTERED[name] = facts, entry
        known = facts(entry.architecture) if callable(facts) else facts
        for tag, weight in entry.weights.items():
            cfgs[f"{name}.{tag}"] = {**known, **pretrained_cfg_for(weight)}
    out = generate_default_cfgs(cfgs)
    for name in arch_facts:  # timm puts a tag with a weight source first; the catalogue's default comes first here
        tags, default = out[name].tags, _REGISTERED[name].default_weight
        tags.remove(default)
        tags.appendleft(default)
    return out


def sync_with_catalogue() -> None:
    """Register again, with fresh cfgs and tags, every zoo name whose catalogue entry changed since timm got it (an
    `add_catalogue()` overriding it, or an extra catalogue gone)."""
    for name, seen in list(_REGISTERED.items()):
        try:
            entry = registry.get_model_entry(name)
        except UnknownModelError:
            continue  # its catalogue was removed; the name stays registered and fails when used
        if entry != seen:
            fn = _ENTRYPOINTS[name]
            sys.modules[fn.__module__].default_cfgs.update(zoo_default_cfgs({name: _FACTS[name]}))
            with warnings.catch_warnings():  # timm warns on every re-registration: this one is meant
                warnings.simplefilter("ignore")
                register_model(fn)


def register_zoo_model(fn: ModelFn) -> ModelFn:
    """`timm.models.register_model` for zoo names, adding catalogue-verified weight loading (`data_root=` names the
    data folder for weights read from it)."""
    name = fn.__name__

    @functools.wraps(fn)
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> Any:
        sync_with_catalogue()
        data_root = kwargs.pop("data_root", None)
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=kwargs.pop("pretrained_cfg", None),
                                     pretrained_cfg_overlay=kwargs.pop("pretrained_cfg_overlay", None))
        if not pretrained:
            return fn(pretrained=False, pretrained_cfg=cfg, **kwargs)
        if cfg.file or cfg.state_dict:
            source = cfg.file or "the state dict"
        else:
            weights = resolve(registry.get_model_entry(name).weight(cfg.tag), cache_dir=kwargs.get("cache_dir"),
                              data_root=data_root)
            cfg, source = replace(cfg, file=str(weights.path)), weights.source
        return build_checked(lambda loaded: fn(pretrained=loaded, pretrained_cfg=cfg if loaded else replace(
            cfg, file=None, state_dict=None), **kwargs), name, source, cfg.file, cfg.state_dict)

    _ENTRYPOINTS[name] = entrypoint
    return register_model(entrypoint)


def build_checked(build: Callable[[bool], Any], name: str, source: str, file: str | None,
                  state_dict: Mapping[str, Any] | None = None) -> Any:
    """`build(True)`, which builds model `name` and loads the weights `source` names (the safetensors `file`, or
    `state_dict`) with timm's loader, checked to be finite. Weights that do not fit the model (another model's,
    another head's) are one `InvalidWeightsError` naming the keys, not torch's multi-line RuntimeError: on a failed
    load they are compared key by key and shape by shape with `build(False)` on the meta device."""
    try:
        model = build(True)
    except RuntimeError as e:
        mismatch = _mismatch(build, file, state_dict)
        if not mismatch:
            raise
        raise InvalidWeightsError(f"The weights from {source} do not fit model '{name}': {mismatch}. They are another "
                                  f"model's (or another num_classes'); pass weights made for '{name}'.",
                                  path=source) from e
    return check_finite(model, source)


def _mismatch(build: Callable[[bool], Any], file: str | None, state_dict: Mapping[str, Any] | None) -> str:
    """How the tensors of `file` (or `state_dict`) differ from the model's own, "" when they agree or the file cannot
    be read."""
    import torch
    from safetensors import SafetensorError, safe_open
    with torch.device("meta"):
        own = shapes_of(build(False).state_dict())
    if state_dict or file is None:
        return state_mismatch(own, shapes_of(state_dict or {}))
    try:
        with safe_open(file, "pt") as f:
            given = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (OSError, SafetensorError):
        return ""
    return state_mismatch(own, given)
