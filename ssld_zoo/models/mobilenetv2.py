"""MobileNetV2 as built by PaddleClas, for the SSLD MobileNetV2 weights.

Papers:
* `MobileNetV2: Inverted Residuals and Linear Bottlenecks` - https://arxiv.org/abs/1801.04381
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones` (SSLD)
  - https://arxiv.org/abs/2103.05959

Architecture follows PaddleClas ``ppcls/arch/backbone/model_zoo/mobilenet_v2.py`` (``MobileNetV2``, scale 1.0). It is
timm's ``EfficientNet`` class as used by ``mobilenetv2_100`` with one change: PaddleClas builds every block, the
expansion-1 first block included, as an inverted residual, so the first block has a 1x1 expand conv
(32 -> 32, BN, ReLU6) that timm's depthwise-separable first block lacks. There is no dropout.
"""
from typing import Any

import torch.nn as nn
from timm.models import build_model_with_cfg
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__: list[str] = []


def _create_mobilenetv2_ssld(variant: str, pretrained: bool = False, **kwargs: Any) -> EfficientNet:
    return build_model_with_cfg(
        EfficientNet,
        variant,
        pretrained,
        feature_cfg=dict(flatten_sequential=True),
        **kwargs,
    )


def _gen_mobilenetv2_ssld(variant: str, pretrained: bool = False, **kwargs: Any) -> EfficientNet:
    """Build PaddleClas ``MobileNetV2`` (x1.0)."""
    arch_def = [
        ['ir_r1_k3_s1_e1_c16'],
        ['ir_r2_k3_s2_e6_c24'],
        ['ir_r3_k3_s2_e6_c32'],
        ['ir_r4_k3_s2_e6_c64'],
        ['ir_r3_k3_s1_e6_c96'],
        ['ir_r3_k3_s2_e6_c160'],
        ['ir_r1_k3_s1_e6_c320'],
    ]
    model_kwargs = dict(
        block_args=decode_arch_def(arch_def),
        num_features=1280,
        stem_size=32,
        act_layer=nn.ReLU6,
    )
    model_kwargs.update(kwargs)
    return _create_mobilenetv2_ssld(variant, pretrained, **model_kwargs)


_ARCH_FACTS = dict(first_conv='conv_stem', classifier='classifier', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({'mobilenetv2_ssld': _ARCH_FACTS})


@register_zoo_model
def mobilenetv2_ssld(pretrained: bool = False, **kwargs: Any) -> EfficientNet:
    """MobileNetV2 (PaddleClas): timm ``mobilenetv2_100`` with a 1x1 expand conv in the first block."""
    return _gen_mobilenetv2_ssld('mobilenetv2_ssld', pretrained=pretrained, **kwargs)
