"""ssld_zoo: PaddleClas SSLD-distilled backbones as PyTorch/timm models.

`import ssld_zoo` is cheap: torch and timm are imported on first use. Once timm is imported (before or after
ssld_zoo), every zoo name is registered with it, so `timm.create_model("resnet50d_ssld")` works too.
"""
from __future__ import annotations

from typing import Any

from ssld_zoo.version import __version__

_LAZY = {
    "create": "models.factory", "get_transform": "data.transforms",
    "list_models": "catalogue.registry", "model_info": "catalogue.registry", "add_catalogue": "catalogue.registry",
    "SsldZooError": "errors", "UnknownModelError": "errors", "WeightsUnavailableError": "errors",
    "OfflineError": "errors", "IntegrityError": "errors", "InvalidWeightsError": "errors",
    "UnsafePickleError": "errors", "ConversionError": "errors", "PublishError": "errors", "CatalogueError": "errors",
    "stage_param_groups": "tools.backbones", "fpn_backbone": "tools.backbones", "LR_MULTS": "tools.backbones",
    "export_backbone": "tools.detector_backbones", "detector_config": "tools.detector_configs",
    "load_backbone_weights": "tools.detector_configs",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ssld_zoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)


from ssld_zoo import _timm_hook  # noqa: E402

_timm_hook.install()
