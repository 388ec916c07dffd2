"""ResNet-D (``_vd``) as built by PaddleClas, for the SSLD ResNet34_vd weights.

Papers:
* `Deep Residual Learning for Image Recognition` - https://arxiv.org/abs/1512.03385
* `Bag of Tricks for Image Classification with Convolutional Neural Networks` - https://arxiv.org/abs/1812.01187
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones` (SSLD)
  - https://arxiv.org/abs/2103.05959

Architecture follows PaddleClas ``ppcls/arch/backbone/legendary_models/resnet.py`` (``version="vd"``). It is timm's
``resnet34d`` (deep 32-wide stem, avg-pool downsample) plus one extra module: PaddleClas's ``use_first_short_conv``
gives the first block of the first stage a 1x1 conv + BN shortcut even though its input and output both have 64
channels and it does not stride. Paddle stores it as ``blocks.0.short``; here it is ``layer1.0.downsample``.
"""
from typing import Any

import torch.nn as nn
from timm.layers import get_norm_layer
from timm.models import build_model_with_cfg
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, downsample_avg

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__ = ['ResNetVd']


class ResNetVd(ResNet):
    """timm ``ResNet`` with PaddleClas's projection shortcut on the first block of the first stage."""

    def __init__(self, *args: Any, first_short_conv: bool = True, **kwargs: Any) -> None:
        """
        Args:
            *args: Positional arguments of timm ``ResNet`` (``block``, ``layers``, ...).
            first_short_conv: Give ``layer1.0`` a 1x1 conv + BN shortcut when timm would use identity.
            **kwargs: Keyword arguments of timm ``ResNet``.
        """
        super().__init__(*args, **kwargs)
        first_block = self.get_submodule('layer1.0')
        assert isinstance(first_block, (BasicBlock, Bottleneck))
        if first_short_conv and first_block.downsample is None:
            chs = first_block.conv1.in_channels
            first_block.downsample = downsample_avg(
                chs,
                chs,
                kernel_size=1,
                stride=1,
                norm_layer=get_norm_layer(kwargs.get('norm_layer', nn.BatchNorm2d)),
                device=kwargs.get('device'),
                dtype=kwargs.get('dtype'),
            )
            nn.init.kaiming_normal_(first_block.downsample.get_parameter('1.weight'), mode='fan_out',
                                    nonlinearity='relu')


def _create_resnet_vd(variant: str, pretrained: bool = False, **kwargs: Any) -> ResNetVd:
    return build_model_with_cfg(
        ResNetVd,
        variant,
        pretrained,
        feature_cfg=dict(out_indices=(0, 1, 2, 3, 4)),
        **kwargs,
    )


_ARCH_FACTS = dict(first_conv='conv1.0', classifier='fc', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({name: _ARCH_FACTS for name in ('resnet34d_ssld',)})


@register_zoo_model
def resnet34d_ssld(pretrained: bool = False, **kwargs: Any) -> ResNetVd:
    """ResNet34_vd (PaddleClas): ResNet-34-D with a projection shortcut on the first block."""
    model_args = dict(block=BasicBlock, layers=(3, 4, 6, 3), stem_width=32, stem_type='deep', avg_down=True)
    return _create_resnet_vd('resnet34d_ssld', pretrained, **dict(model_args, **kwargs))
