"""Res2Net-D (``Res2Net_vd_26w_4s``) as built by PaddleClas, for the SSLD Res2Net50/101/200_vd weights.

Papers:
* `Res2Net: A New Multi-scale Backbone Architecture` - https://arxiv.org/abs/1904.01169
* `Bag of Tricks for Image Classification with Convolutional Neural Networks` - https://arxiv.org/abs/1812.01187
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones` (SSLD)
  - https://arxiv.org/abs/2103.05959

Architecture follows PaddleClas ``ppcls/arch/backbone/model_zoo/res2net_vd.py``. Stem, avg-pool downsample and
widths match timm's ``res2net50d``; the residual block differs in two ways:

* Paddle treats a block as "first" only when it strides. ``layer1.0`` (stride 1, projection shortcut) therefore
  adds each split to the previous split's output and passes the last split through unchanged, where timm's
  ``Bottle2neck`` skips the adds and average-pools the last split.
* The stride-2 last-split pool is ``AvgPool2D(3, 2, 1)`` with Paddle's default ``exclusive=True``, i.e. padding is
  left out of the average (``count_include_pad=False``).
"""
from typing import Any, Optional

import torch.nn as nn
from timm.models import build_model_with_cfg
from timm.models.res2net import Bottle2neck
from timm.models.resnet import ResNet

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__ = ['Bottle2neckVd']


class Bottle2neckVd(Bottle2neck):
    """timm ``Bottle2neck`` with PaddleClas ``Res2Net_vd`` split handling (see module docstring)."""

    def __init__(
            self,
            inplanes: int,
            planes: int,
            stride: int = 1,
            downsample: Optional[nn.Module] = None,
            **kwargs: Any,
    ) -> None:
        """
        Args:
            inplanes: Input channels.
            planes: Bottleneck planes; output channels are ``planes * 4``.
            stride: Stride of the 3x3 split convs and of the last-split pool.
            downsample: Shortcut projection, or None for identity.
            **kwargs: Keyword arguments of timm ``Bottle2neck`` (``base_width``, ``scale``, ``norm_layer``, ...).
        """
        super().__init__(inplanes, planes, stride, downsample, **kwargs)
        self.is_first = stride > 1
        self.pool = nn.AvgPool2d(  # type: ignore[assignment]  # timm's own `pool` is None too, typed AvgPool2d
            3, stride=stride, padding=1, count_include_pad=False) if self.is_first else None


def _create_res2net_vd(variant: str, pretrained: bool = False, **kwargs: Any) -> ResNet:
    return build_model_with_cfg(
        ResNet,
        variant,
        pretrained,
        feature_cfg=dict(out_indices=(0, 1, 2, 3, 4)),
        **kwargs,
    )


def _res2net_vd_args(layers: tuple[int, int, int, int]) -> dict[str, Any]:
    return dict(
        block=Bottle2neckVd, layers=layers, base_width=26, stem_type='deep', stem_width=32, avg_down=True,
        block_args=dict(scale=4),
    )


_ARCH_FACTS = dict(first_conv='conv1.0', classifier='fc', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({name: _ARCH_FACTS
                                 for name in ('res2net50d_ssld', 'res2net101d_ssld', 'res2net200d_ssld')})


@register_zoo_model
def res2net50d_ssld(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Res2Net50_vd_26w_4s (PaddleClas)."""
    return _create_res2net_vd('res2net50d_ssld', pretrained, **dict(_res2net_vd_args((3, 4, 6, 3)), **kwargs))


@register_zoo_model
def res2net101d_ssld(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Res2Net101_vd_26w_4s (PaddleClas)."""
    return _create_res2net_vd('res2net101d_ssld', pretrained, **dict(_res2net_vd_args((3, 4, 23, 3)), **kwargs))


@register_zoo_model
def res2net200d_ssld(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Res2Net200_vd_26w_4s (PaddleClas)."""
    return _create_res2net_vd('res2net200d_ssld', pretrained, **dict(_res2net_vd_args((3, 12, 48, 3)), **kwargs))
