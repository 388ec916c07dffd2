"""Zoo names whose weights load into a stock timm architecture (`resnet50d_ssld` → timm `resnet50d`).

Each is a thin timm entrypoint generated from the catalogue: it builds the stock architecture with the catalogue's
`model_args` (read when called, so a catalogue added later is followed), and the zoo's pretrained cfg (preprocessing,
classes, verified weights) instead of timm's.
"""
from __future__ import annotations

from typing import Any

from timm.models import get_pretrained_cfg, is_model, model_entrypoint

from ssld_zoo.catalogue import registry
from ssld_zoo.models._zoo import register_zoo_model, sync_with_catalogue, zoo_default_cfgs

_ARCH_FACTS = ("first_conv", "classifier", "pool_size", "min_input_size", "fixed_input_size")


def _arch_facts(architecture: str) -> dict[str, Any]:
    cfg = get_pretrained_cfg(architecture)
    if cfg is None:
        return {}
    return {k: getattr(cfg, k) for k in _ARCH_FACTS if getattr(cfg, k) is not None}


def _make_entrypoint(entry: registry.ModelEntry) -> Any:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> Any:
        live = registry.get_model_entry(entry.name)
        return model_entrypoint(live.architecture)(pretrained=pretrained, **{**live.model_args, **kwargs})

    entrypoint.__name__ = entrypoint.__qualname__ = entry.name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"{entry.data.get('paddle_name') or entry.name} SSLD weights on timm `{entry.architecture}`."
    return entrypoint


def register_catalogue_models() -> None:
    """Register every stock-architecture catalogue entry that timm does not know yet, and register again every zoo
    name whose entry a catalogue has changed (safe to call again, e.g. after `ssld_zoo.add_catalogue`)."""
    new = [e for e in registry.iter_models() if e.is_stock_architecture and not is_model(e.name)]
    default_cfgs.update(zoo_default_cfgs({e.name: _arch_facts for e in new}))
    for entry in new:
        register_zoo_model(_make_entrypoint(entry))
    sync_with_catalogue()


default_cfgs: dict[str, Any] = {}
register_catalogue_models()
