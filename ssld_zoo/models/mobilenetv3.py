"""MobileNetV3 as built by PaddleClas, for the SSLD MobileNetV3 large/small weights.

Papers:
* `Searching for MobileNetV3` - https://arxiv.org/abs/1905.02244
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones` (SSLD)
  - https://arxiv.org/abs/2103.05959

Architecture follows PaddleClas ``ppcls/arch/backbone/legendary_models/mobilenet_v3.py``. It is timm's ``MobileNetV3``
class with a block definition derived from Paddle's ``NET_CONFIG`` tables. Differences from timm's
``mobilenetv3_large_100`` / ``mobilenetv3_small_100``:

* the first block is an inverted residual with a 1x1 expand conv + BN + ReLU even at expansion 1 (timm: depthwise
  separable block without expand conv);
* SE reduce width is ``mid // 4`` (timm rounds to a multiple of 8) and the SE gate is Paddle's hard sigmoid
  ``clip(0.2 * x + 0.5, 0, 1)`` (torch's ``Hardsigmoid`` has slope 1/6);
* all widths, including expanded widths, are rounded from Paddle's configured channel counts with Paddle's
  ``_make_divisible`` (timm derives the expanded width from the rounded block input width), and the stem is scaled
  too (x0.35: 8 channels);
* the head conv has no bias and is 1280 wide for both large and small.

Paddle's dropout (p=0.2) runs in ``downscale_in_infer`` mode, so Paddle scales the pre-logits by 0.8 at inference.
Here a plain dropout (identity in eval) is used and the weight converter folds the 0.8 into ``classifier.weight``.
"""
from functools import partial
from typing import Any, List, Sequence, Tuple

import torch
import torch.nn as nn
from timm.layers import make_divisible
from timm.models import build_model_with_cfg
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.mobilenetv3 import MobileNetV3

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__ = ['PaddleHardSigmoid']

# PaddleClas NET_CONFIG rows (kernel, expanded chs, out chs, SE, activation, stride), grouped into timm stages.
_BlockCfg = Tuple[int, int, int, bool, str, int]
_LARGE_CFG: Tuple[Tuple[_BlockCfg, ...], ...] = (
    ((3, 16, 16, False, 'relu', 1),),
    ((3, 64, 24, False, 'relu', 2), (3, 72, 24, False, 'relu', 1)),
    ((5, 72, 40, True, 'relu', 2), (5, 120, 40, True, 'relu', 1), (5, 120, 40, True, 'relu', 1)),
    (
        (3, 240, 80, False, 'hard_swish', 2), (3, 200, 80, False, 'hard_swish', 1),
        (3, 184, 80, False, 'hard_swish', 1), (3, 184, 80, False, 'hard_swish', 1),
    ),
    ((3, 480, 112, True, 'hard_swish', 1), (3, 672, 112, True, 'hard_swish', 1)),
    ((5, 672, 160, True, 'hard_swish', 2), (5, 960, 160, True, 'hard_swish', 1), (5, 960, 160, True, 'hard_swish', 1)),
)
_SMALL_CFG: Tuple[Tuple[_BlockCfg, ...], ...] = (
    ((3, 16, 16, True, 'relu', 2),),
    ((3, 72, 24, False, 'relu', 2), (3, 88, 24, False, 'relu', 1)),
    ((5, 96, 40, True, 'hard_swish', 2), (5, 240, 40, True, 'hard_swish', 1), (5, 240, 40, True, 'hard_swish', 1)),
    ((5, 120, 48, True, 'hard_swish', 1), (5, 144, 48, True, 'hard_swish', 1)),
    ((5, 288, 96, True, 'hard_swish', 2), (5, 576, 96, True, 'hard_swish', 1), (5, 576, 96, True, 'hard_swish', 1)),
)


class PaddleHardSigmoid(nn.Module):
    """Paddle's ``hardsigmoid(x, slope, offset)``: ``clip(slope * x + offset, 0, 1)``, slope 0.2 by default."""

    def __init__(self, slope: float = 0.2, offset: float = 0.5) -> None:
        super().__init__()
        self.slope = slope
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.slope + self.offset).clamp(0., 1.)

    def extra_repr(self) -> str:
        return f'slope={self.slope}, offset={self.offset}'


def _paddle_arch_def(
        stages: Sequence[Sequence[_BlockCfg]],
        stem_chs: int,
        last_chs: int,
        multiplier: float,
) -> List[List[str]]:
    """Write Paddle's block table as timm block strings with Paddle's channel rounding.

    Widths are rounded here, so the builder must not scale them again. timm computes the expanded width as
    ``make_divisible(in_chs * exp_ratio)``; the ratio is set to Paddle's rounded expanded width over the block input
    width so both agree.
    """
    in_chs = make_divisible(stem_chs * multiplier)
    arch_def = []
    for stage in stages:
        stage_def = []
        for kernel, mid, out, se, act, stride in stage:
            mid_chs, out_chs = make_divisible(mid * multiplier), make_divisible(out * multiplier)
            block = f'ir_r1_k{kernel}_s{stride}_e{mid_chs / in_chs}_c{out_chs}'
            block += '_se0.25' if se else ''
            block += '_nre' if act == 'relu' else ''
            stage_def.append(block)
            in_chs = out_chs
        arch_def.append(stage_def)
    arch_def.append([f'cn_r1_k1_s1_c{make_divisible(last_chs * multiplier)}'])
    return arch_def


def _create_mobilenetv3_ssld(variant: str, pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    return build_model_with_cfg(
        MobileNetV3,
        variant,
        pretrained,
        feature_cfg=dict(flatten_sequential=True),
        **kwargs,
    )


def _gen_mobilenetv3_ssld(variant: str, small: bool, multiplier: float, pretrained: bool = False,
                          **kwargs: Any) -> MobileNetV3:
    """Build a PaddleClas MobileNetV3 (``MobileNetV3_{large,small}_x{multiplier}``)."""
    cfg, last_chs = (_SMALL_CFG, 576) if small else (_LARGE_CFG, 960)
    model_kwargs = dict(
        block_args=decode_arch_def(_paddle_arch_def(cfg, 16, last_chs, multiplier)),
        stem_size=make_divisible(16 * multiplier),
        fix_stem=True,
        num_features=1280,
        head_bias=False,
        act_layer=nn.Hardswish,
        se_layer=partial(SqueezeExcite, gate_layer=PaddleHardSigmoid, force_act_layer=nn.ReLU, rd_round_fn=int),
        drop_rate=0.2,
    )
    model_kwargs.update(kwargs)
    return _create_mobilenetv3_ssld(variant, pretrained, **model_kwargs)


_ARCH_FACTS = dict(first_conv='conv_stem', classifier='classifier', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({name: _ARCH_FACTS for name in (
    'mobilenetv3_large_ssld', 'mobilenetv3_small_ssld', 'mobilenetv3_small_035_ssld',
)})


@register_zoo_model
def mobilenetv3_large_ssld(pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    """MobileNetV3_large_x1_0 (PaddleClas)."""
    return _gen_mobilenetv3_ssld('mobilenetv3_large_ssld', small=False, multiplier=1.0, pretrained=pretrained, **kwargs)


@register_zoo_model
def mobilenetv3_small_ssld(pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    """MobileNetV3_small_x1_0 (PaddleClas)."""
    return _gen_mobilenetv3_ssld('mobilenetv3_small_ssld', small=True, multiplier=1.0, pretrained=pretrained, **kwargs)


@register_zoo_model
def mobilenetv3_small_035_ssld(pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    """MobileNetV3_small_x0_35 (PaddleClas)."""
    return _gen_mobilenetv3_ssld(
        'mobilenetv3_small_035_ssld', small=True, multiplier=0.35, pretrained=pretrained, **kwargs)
