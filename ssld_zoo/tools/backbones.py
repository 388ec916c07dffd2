"""Zoo models as backbones: per-stage learning-rate groups (SSLD's fine-tuning trick) and torchvision FPN backbones.

SSLD-distilled features are easy to destroy with a full learning rate, so PaddleClas fine-tunes them with a smaller
learning rate for the early stages (`LR_MULTS`). `stage_param_groups` turns a list of per-stage multipliers into
optimizer parameter groups for any zoo model, its `features_only` variant, or a detector/segmenter built around one.
`fpn_backbone` wraps a `features_only` zoo model with torchvision's `FeaturePyramidNetwork`, ready for `FasterRCNN`,
`MaskRCNN`, `RetinaNet`, ...

Stages are derived from the model's timm `feature_info` (the modules that produce each feature level, taken in
parameter order); a model whose first feature level is deeper than stride 2 gets the parameters in front of it as an
extra stem stage. See docs/backbones.md for the mapping per family.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence, cast

import torch
from torch import nn

from ssld_zoo.errors import SsldZooError

if TYPE_CHECKING:
    from timm.models import FeatureInfo

__all__ = ["LR_MULTS", "StageSplit", "split_stages", "stage_param_groups", "FeaturePyramidBackbone", "fpn_backbone"]

# Per-stage learning-rate multipliers (stem, stage 1..4; the head keeps 1.0) recommended for fine-tuning SSLD weights
# in PaddleClas's `docs/en/advanced_tutorials/distillation/distillation_en.md`, section 4.1: ResNet50_vd for
# classification and for detection, and MobileNetV3_large_x1_0 for classification and detection.
LR_MULTS: dict[str, tuple[float, ...]] = {
    "classification": (0.1, 0.1, 0.2, 0.2, 0.3),
    "detection": (0.05, 0.05, 0.05, 0.1, 0.15),
    "mobilenetv3": (0.25, 0.25, 0.5, 0.5, 0.75),
}


class StageSplit(NamedTuple):
    """Parameter names of a model by stage (`stages[0]` is the stem) and those after the last stage (`head`).

    `backbone` is the name of the module whose `feature_info` defined the stages ("" for the model itself).
    """

    stages: list[list[str]]
    head: list[str]
    backbone: str


def _find_backbone(model: nn.Module) -> tuple[str, nn.Module]:
    """The outermost module with a timm `feature_info` (the model itself, or e.g. `backbone.body` of a detector)."""
    from timm.models import FeatureInfo
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        nested = any(not outer or name.startswith(f"{outer}.") for outer, _ in found)
        if isinstance(getattr(module, "feature_info", None), (FeatureInfo, list)) and not nested:
            found.append((name, module))
    if not found:
        raise SsldZooError(f"{type(model).__name__} holds no timm model with `feature_info`; build the backbone with "
                           "ssld_zoo.create(...) (or timm.create_model) so its stages can be found")
    if len(found) > 1:
        names = ", ".join(name or "<model>" for name, _ in found)
        raise SsldZooError(f"{type(model).__name__} holds several backbones ({names}); pass the one to split "
                           "into stages")
    return found[0]


def _levels(backbone: nn.Module) -> list[dict[str, Any]]:
    """Every feature level of a timm model (all levels, whatever `out_indices` a feature extractor returns)."""
    info = cast("FeatureInfo | list[dict[str, Any]]", backbone.feature_info)  # what _find_backbone found
    return list(info.info) if hasattr(info, "info") else list(info)


def _resolve(name: str, modules: set[str]) -> str | None:
    """A `feature_info` module name as it is in this model (feature extractors flatten `blocks.1` to `blocks_1`)."""
    for candidate in (name, name.replace(".", "_")):
        if candidate in modules:
            return candidate
    return None


def _inside(param: str, module: str) -> bool:
    return param.startswith(f"{module}.")


def _split_by_modules(names: list[str], level_modules: list[str]) -> tuple[list[list[str]], list[str]]:
    """Walk parameters in registration order: a parameter belongs to the level whose module holds it, else to the
    next level whose module comes after it; parameters after the last level's module are the head."""
    levels: list[list[str]] = [[] for _ in level_modules]
    head: list[str] = []
    current, started = 0, False
    for name in names:
        owner = next((i for i, module in enumerate(level_modules) if _inside(name, module)), None)
        if owner is not None:
            current, started = owner, True
        elif started:
            current, started = current + 1, False
        if current < len(level_modules):
            levels[current].append(name)
        else:
            head.append(name)
    return levels, head


def _split_by_group_matcher(backbone: nn.Module, names: list[str],
                            num_levels: int) -> tuple[list[list[str]], list[str]]:
    """Stages from timm's coarse `group_matcher` (stem, one group per stage, head), for models whose `feature_info`
    names are not modules (HRNet)."""
    from timm.models._manipulate import group_with_matcher
    matcher = getattr(backbone, "group_matcher", None)
    groups = list(group_with_matcher(((n, None) for n in names), matcher(coarse=True)).values()) if matcher else []
    if len(groups) != num_levels + 1:
        raise SsldZooError(f"cannot tell the stages of {type(backbone).__name__}: its feature_info modules are not "
                           "submodules and its group_matcher does not give one group per feature level")
    return groups[:-1], groups[-1]


def split_stages(model: nn.Module) -> StageSplit:
    """Split the trainable parameters of `model` into stages (stem first) and head.

    The stages come from the timm `feature_info` of the outermost submodule that has one (the model, a `features_only`
    extractor, or the backbone inside a detector). Every feature level is a stage; if the first level is deeper than
    stride 2 (e.g. PP-HGNet's stages), the parameters in front of it form an extra stem stage. Everything outside the
    backbone or after its last level (classifier, FPN, detection heads) is the head.
    """
    prefix, backbone = _find_backbone(model)
    dotted = f"{prefix}." if prefix else ""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    inner = [name[len(dotted):] for name in trainable if name.startswith(dotted)]
    outer = [name for name in trainable if not name.startswith(dotted)]

    levels = _levels(backbone)
    module_names = {name for name, _ in backbone.named_modules()}
    resolved = [_resolve(level["module"], module_names) for level in levels]
    present = len(resolved)
    while present and resolved[present - 1] is None:
        present -= 1
    if present and all(resolved[:present]):
        # levels missing at the end were cut off by `out_indices`: they keep their stage, with no parameters
        stages, head = _split_by_modules(inner, resolved[:present])  # type: ignore[arg-type]
        stages += [[] for _ in range(len(levels) - present)]
        if levels[0]["reduction"] > 2:
            first = stages.pop(0)
            in_first = [n for n in first if _inside(n, resolved[0])]  # type: ignore[arg-type]
            stages[:0] = [[n for n in first if n not in in_first], in_first]
    else:
        stages, head = _split_by_group_matcher(backbone, inner, len(levels))
    return StageSplit([[dotted + n for n in stage] for stage in stages], [dotted + n for n in head] + outer, prefix)


def _multipliers(lr_mults: Sequence[float] | str, num_stages: int, model: nn.Module) -> list[float]:
    """The per-stage multipliers: a preset name from `LR_MULTS` or one number per stage."""
    if isinstance(lr_mults, str):
        if lr_mults not in LR_MULTS:
            raise SsldZooError(f"unknown lr_mults preset {lr_mults!r}; use one of {sorted(LR_MULTS)} or a list of "
                               "numbers")
        lr_mults = LR_MULTS[lr_mults]
    mults = [float(m) for m in lr_mults]
    if len(mults) != num_stages:
        raise SsldZooError(f"lr_mults has {len(mults)} values but {type(model).__name__} has {num_stages} stages "
                           f"(stem + {num_stages - 1}); pass {num_stages} multipliers, first for the stem")
    if not all(math.isfinite(m) and m >= 0 for m in mults):
        raise SsldZooError(f"lr_mults must be finite numbers >= 0, got {mults}")
    return mults


def _no_decay(model: nn.Module, names: Iterable[str]) -> set[str]:
    """Norm weights and biases (every parameter with fewer than 2 dims) and the model's own `no_weight_decay()`."""
    params = dict(model.named_parameters())
    no_weight_decay = getattr(model, "no_weight_decay", None)
    skip = set(no_weight_decay()) if no_weight_decay is not None else set()
    return {n for n in names if params[n].ndim <= 1 or n in skip}


def stage_param_groups(model: nn.Module, lr: float, lr_mults: Sequence[float] | str, *, weight_decay: float = 0.0,
                       no_weight_decay_norm_bias: bool = True, head_lr_mult: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups with a learning-rate multiplier per backbone stage.

    Args:
        model: a zoo/timm model, a `features_only` extractor, or any module holding exactly one of them (e.g. a
            torchvision detector built on `fpn_backbone`); stages as in `split_stages`.
        lr: base learning rate.
        lr_mults: one multiplier per stage, stem first (`len(split_stages(model).stages)` values), or a preset name
            from `LR_MULTS` (for 5-stage models).
        weight_decay: weight decay of the weights that decay.
        no_weight_decay_norm_bias: give norm weights, biases (parameters with < 2 dims) and the model's
            `no_weight_decay()` names a weight decay of 0.
        head_lr_mult: multiplier for everything after the backbone's last stage (classifier, FPN, detection heads).

    Returns:
        A list of dicts for `torch.optim` (empty groups left out). Each has `params`, `lr` (= `lr * lr_mult`),
        `weight_decay`, `lr_mult`, `lr_scale` (the same value, the key timm's schedulers scale by) and `name`
        (`"stem"`, `"stage1"`, ..., `"head"`, with `"_no_decay"` appended for the weight-decay-free group).
    """
    split = split_stages(model)
    mults = _multipliers(lr_mults, len(split.stages), model)
    params = dict(model.named_parameters())
    named = [(("stem" if i == 0 else f"stage{i}"), m, names) for i, (m, names) in enumerate(zip(mults, split.stages))]
    named.append(("head", float(head_lr_mult), split.head))
    no_decay = _no_decay(model, params) if no_weight_decay_norm_bias else set()
    groups = []
    for group_name, mult, names in named:
        for suffix, members, decay in (("", [n for n in names if n not in no_decay], weight_decay),
                                       ("_no_decay", [n for n in names if n in no_decay], 0.0)):
            if members:
                groups.append({"params": [params[n] for n in members], "lr": lr * mult, "weight_decay": decay,
                               "lr_mult": mult, "lr_scale": mult, "name": group_name + suffix})
    return groups


class FeaturePyramidBackbone(nn.Module):
    """A `features_only` timm model followed by torchvision's `FeaturePyramidNetwork`.

    Same interface as torchvision's `BackboneWithFPN`: `body`, `fpn`, `out_channels`, and `forward(images)` returns an
    `OrderedDict` of feature maps (`"0"`, `"1"`, ... from fine to coarse, then `"pool"` with the default extra block),
    each with `out_channels` channels, so it plugs into `FasterRCNN`, `MaskRCNN`, `RetinaNet`, ...
    """

    def __init__(self, body: nn.Module, out_channels: int = 256, extra_blocks: nn.Module | None = None,
                 norm_layer: type[nn.Module] | None = None) -> None:
        """
        Args:
            body: a `features_only` timm model (returns a list of feature maps; has `feature_info`).
            out_channels: channels of every FPN output.
            extra_blocks: torchvision FPN extra block; default `LastLevelMaxPool()` (adds `"pool"`).
            norm_layer: norm layer inside the FPN (torchvision's default: none).
        """
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(cast("FeatureInfo", body.feature_info).channels(), out_channels,
                                         extra_blocks=LastLevelMaxPool() if extra_blocks is None else extra_blocks,
                                         norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))


def fpn_backbone(name: str, pretrained: Any = False, out_indices: Sequence[int] | None = None,
                 out_channels: int = 256, extra_blocks: nn.Module | None = None,
                 norm_layer: type[nn.Module] | None = None, **kwargs: Any) -> FeaturePyramidBackbone:
    """A torchvision-ready FPN backbone from a zoo model: `ssld_zoo.create(name, pretrained, features_only=True,
    out_indices=out_indices, **kwargs)` + `FeaturePyramidNetwork` (see `FeaturePyramidBackbone`).

    `out_indices` defaults to the last four feature levels: strides 4-32 for the ImageNet models (levels 1-4 of
    ResNet-vd, MobileNet, HRNet, ...; levels 0-3 of PP-HGNet and PP-LCNetV2), strides 1-4 for the CIFAR ResNets.
    """
    from ssld_zoo.models.factory import create
    with torch.device("meta"):
        levels = _levels(create(name, features_only=True))
    if out_indices is None:
        out_indices = tuple(range(max(len(levels) - 4, 0), len(levels)))
    if not out_indices or any(not -len(levels) <= i < len(levels) for i in out_indices):
        strides = [level["reduction"] for level in levels]
        raise SsldZooError(f"out_indices {tuple(out_indices)} do not fit {name}: it has {len(levels)} feature levels "
                           f"(indices 0-{len(levels) - 1}, strides {strides})")
    body = create(name, pretrained, features_only=True, out_indices=out_indices, **kwargs)
    return FeaturePyramidBackbone(body, out_channels, extra_blocks=extra_blocks, norm_layer=norm_layer)
