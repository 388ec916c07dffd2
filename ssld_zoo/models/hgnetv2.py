"""PP-HGNetV2 as built by PaddleClas, for the SSLD PP-HGNetV2 B0-B3 weights.

Papers:
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones` (SSLD)
  - https://arxiv.org/abs/2103.05959
* PP-HGNetV2 has no paper; see PaddleClas ``docs/zh_CN/models/ImageNet1k/PP-HGNetV2.md``.

Architecture follows PaddleClas ``ppcls/arch/backbone/legendary_models/pp_hgnet_v2.py`` (``PPHGNetV2_B0`` ... ``B3``).
It is timm's ``hgnetv2_b0`` ... ``hgnetv2_b3`` with one change in the stem. Paddle's stem pools the stem1 output with
``MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")``, which pads one row and one column after the
input that never win the max. timm pads that input with zeros before its max-pool, so at the last row and column it
computes ``max(x, 0)`` where Paddle computes ``max(x)``. With ``use_lab=True`` (B0-B3) the stem1 output is
``scale * relu(.) + bias`` and is negative wherever the learnable affine bias is, so the two differ; here the pool
input is padded with ``-inf`` instead. B4-B6 have no LAB, their stem1 output is a ReLU output (>= 0) and timm's zero
padding is exact, so those weights use stock timm ``hgnetv2_b4`` ... ``hgnetv2_b6``.
"""
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg
from timm.models.hgnet import HighPerfGpuNet, StemV2, model_cfgs

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__ = ['StemV2Paddle', 'HighPerfGpuNetPaddle']


class StemV2Paddle(StemV2):
    """timm ``StemV2`` whose 2x2 stride-1 max-pool ignores its padding, as Paddle's ``padding="SAME"`` pool does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem1(x)
        x2 = self.stem2a(F.pad(x, (0, 1, 0, 1)))
        x2 = self.stem2b(F.pad(x2, (0, 1, 0, 1)))
        x1 = self.pool(F.pad(x, (0, 1, 0, 1), value=float('-inf')))
        x = torch.cat([x1, x2], dim=1)
        x = self.stem3(x)
        x = self.stem4(x)
        return x


class HighPerfGpuNetPaddle(HighPerfGpuNet):
    """timm ``HighPerfGpuNet`` (PP-HGNetV2 layout) with the Paddle stem pool (``StemV2Paddle``)."""

    def __init__(self, cfg: dict, in_chans: int = 3, use_lab: bool = False, **kwargs: Any) -> None:
        """
        Args:
            cfg: A timm ``hgnet.model_cfgs`` entry with ``stem_type='v2'``.
            in_chans: Number of input channels.
            use_lab: Learnable affine blocks after every activation (PP-HGNetV2 B0-B3).
            **kwargs: Keyword arguments of timm ``HighPerfGpuNet``.
        """
        super().__init__(cfg, in_chans=in_chans, use_lab=use_lab, **kwargs)
        stem = StemV2Paddle(
            in_chs=in_chans,
            mid_chs=cfg['stem_chs'][0],
            out_chs=cfg['stem_chs'][1],
            use_lab=use_lab,
            device=kwargs.get('device'),
            dtype=kwargs.get('dtype'),
        )
        stem.load_state_dict(self.stem.state_dict())  # keep timm's weight init
        self.stem = stem


def _create_hgnetv2_ssld(variant: str, pretrained: bool = False, **kwargs: Any) -> HighPerfGpuNetPaddle:
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    kwargs.setdefault('use_lab', True)
    return build_model_with_cfg(
        HighPerfGpuNetPaddle,
        variant,
        pretrained,
        model_cfg=model_cfgs[variant.removesuffix('_ssld')],
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
        **kwargs,
    )


_ARCH_FACTS = dict(first_conv='stem.stem1.conv', classifier='head.fc', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({f'hgnetv2_b{i}_ssld': _ARCH_FACTS for i in range(4)})


@register_zoo_model
def hgnetv2_b0_ssld(pretrained: bool = False, **kwargs: Any) -> HighPerfGpuNetPaddle:
    """PPHGNetV2_B0 (PaddleClas): timm ``hgnetv2_b0`` with Paddle's stem max-pool padding."""
    return _create_hgnetv2_ssld('hgnetv2_b0_ssld', pretrained, **kwargs)


@register_zoo_model
def hgnetv2_b1_ssld(pretrained: bool = False, **kwargs: Any) -> HighPerfGpuNetPaddle:
    """PPHGNetV2_B1 (PaddleClas): timm ``hgnetv2_b1`` with Paddle's stem max-pool padding."""
    return _create_hgnetv2_ssld('hgnetv2_b1_ssld', pretrained, **kwargs)


@register_zoo_model
def hgnetv2_b2_ssld(pretrained: bool = False, **kwargs: Any) -> HighPerfGpuNetPaddle:
    """PPHGNetV2_B2 (PaddleClas): timm ``hgnetv2_b2`` with Paddle's stem max-pool padding."""
    return _create_hgnetv2_ssld('hgnetv2_b2_ssld', pretrained, **kwargs)


@register_zoo_model
def hgnetv2_b3_ssld(pretrained: bool = False, **kwargs: Any) -> HighPerfGpuNetPaddle:
    """PPHGNetV2_B3 (PaddleClas): timm ``hgnetv2_b3`` with Paddle's stem max-pool padding."""
    return _create_hgnetv2_ssld('hgnetv2_b3_ssld', pretrained, **kwargs)
