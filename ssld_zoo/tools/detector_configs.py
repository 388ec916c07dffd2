"""transformers' RT-DETR and D-FINE with a zoo backbone through timm: no export needed.

With `import ssld_zoo` first, every zoo name is a timm model, so transformers' `TimmBackbone` can build it. What the
plain configs get wrong is which feature levels to take: `TimmBackboneConfig` returns only the last level unless told
otherwise, and the level numbers differ by family (ResNet-vd has five levels, strides 2-32, so strides 8/16/32 are
levels 2, 3, 4; PP-HGNetV2 has four, strides 4-32, so they are levels 1, 2, 3). A detector that gets fewer or other
levels than its encoder expects fails with an `IndexError`. `detector_config` reads the levels from the model's
`feature_info` and fills in the backbone and encoder values; `load_backbone_weights` puts verified zoo weights into
the built detector (transformers builds timm backbones without weights).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence, cast

from ssld_zoo.errors import DetectorBackboneError, MissingDependencyError

if TYPE_CHECKING:
    from timm.models import FeatureInfo
    from torch import nn

__all__ = ["DETECTORS", "DETECTOR_STRIDES", "detector_levels", "detector_config", "load_backbone_weights"]

DETECTORS = {"rtdetr": "RTDetrConfig", "dfine": "DFineConfig"}  # the name -> its transformers config class
DETECTOR_STRIDES = (8, 16, 32)  # the levels RT-DETR and D-FINE (S and larger) take from their backbone


def detector_levels(backbone: str, strides: Sequence[int] = DETECTOR_STRIDES) -> tuple[tuple[int, ...],
                                                                                       tuple[int, ...]]:
    """The `out_indices` of zoo model `backbone` at `strides`, and their channels (from its timm `feature_info`)."""
    import torch
    from ssld_zoo.models.factory import create
    with torch.device("meta"):
        info = cast("FeatureInfo", create(backbone.partition(".")[0], features_only=True).feature_info)
    reductions, channels = info.reduction(), info.channels()
    missing = [s for s in strides if s not in reductions]
    if missing or not strides:
        raise DetectorBackboneError(f"'{backbone}' has no feature level at stride {missing or list(strides)}; its "
                                    f"levels have strides {reductions}.", weight=backbone)
    indices = tuple(reductions.index(s) for s in strides)
    return indices, tuple(channels[i] for i in indices)


def detector_config(detector: str, backbone: str, *, strides: Sequence[int] = DETECTOR_STRIDES,
                    **overrides: Any) -> Any:
    """A transformers `RTDetrConfig` or `DFineConfig` with zoo model `backbone` as its timm backbone.

    Args:
        detector: `"rtdetr"` (`RTDetrForObjectDetection`) or `"dfine"` (`DFineForObjectDetection`).
        backbone: a zoo model name (a weight tag is ignored: load weights with `load_backbone_weights`).
        strides: the backbone strides the detector's encoder takes (default 8, 16, 32).
        **overrides: any other config value (`num_labels`, `d_model`, `decoder_layers`, ...).

    Sets `backbone_config` (a `TimmBackboneConfig` returning the levels at `strides`), `encoder_in_channels` (their
    channels) and `feat_strides`; the rest is the detector's default unless overridden.
    """
    if detector not in DETECTORS:
        raise DetectorBackboneError(f"Unknown detector '{detector}'. Use one of: {', '.join(DETECTORS)}.",
                                    key=detector)
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError("Detector configs need transformers: pip install transformers",
                                     package="transformers") from e
    indices, channels = detector_levels(backbone, strides)
    values: dict[str, Any] = {
        "backbone_config": transformers.TimmBackboneConfig(  # type: ignore[call-arg]  # a property setter
            backbone=backbone.partition(".")[0], out_indices=list(indices)),
        "encoder_in_channels": list(channels), "feat_strides": list(strides)}
    return getattr(transformers, DETECTORS[detector])(**dict(values, **overrides))


def load_backbone_weights(model: nn.Module, weight: str, pretrained: bool | str | os.PathLike = True, *,
                          cache_dir: str | os.PathLike | None = None) -> None:
    """Load verified zoo weights into the timm backbone inside `model` (a detector built from `detector_config`).

    Args:
        model: the detector (or any module holding exactly one timm feature extractor).
        weight: the zoo model or weight, `name` or `name.tag`, of the backbone.
        pretrained: True (the catalogue's verified weights) or a source as `create(pretrained=...)` takes.
        cache_dir: Hub cache folder (default: `HF_HUB_CACHE`).

    The weights come from `create(weight, pretrained, features_only=True, out_indices=...)` with the backbone's own
    levels and are loaded strictly (frozen BatchNorm layers included).
    """
    from ssld_zoo.models.factory import create
    from ssld_zoo.tools.backbones import _find_backbone
    _, backbone = _find_backbone(model)
    indices = tuple(cast("FeatureInfo", backbone.feature_info).out_indices)
    source = create(weight, pretrained=pretrained, features_only=True, out_indices=indices, cache_dir=cache_dir)
    backbone.load_state_dict(source.state_dict(), strict=True)
