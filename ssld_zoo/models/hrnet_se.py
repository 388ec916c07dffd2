""" SE-HRNet (HRNet-C classifier with squeeze-excitation in every residual block)

Papers:
* `Deep High-Resolution Representation Learning for Visual Recognition` - https://arxiv.org/abs/1908.07919
* `Squeeze-and-Excitation Networks` - https://arxiv.org/abs/1709.01507
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones`
  - https://arxiv.org/abs/2103.05959

Architecture follows PaddleClas `ppcls/arch/backbone/legendary_models/hrnet.py` (`SE_HRNet_W64_C`: `HRNet(width=64,
has_se=True)`). It is timm's `hrnet_w64` (HRNet-C: stage modules 1/1/4/3, 4 blocks per branch, incre Bottleneck heads
32/64/128/256, 3x3 s2 downsample convs, 1x1 conv to 2048) with two changes:
* head convs (downsample convs, final 1x1 conv) have no bias, as timm's `hrnet_w18_ssld` / `hrnet_w48_ssld`;
* every BasicBlock and Bottleneck (stage 1, stages 2-4 branches and the incre head) applies an SE module to the
  residual branch after its last BN, before the shortcut add: global average pool, Linear(C, int(C / 16)) with bias,
  ReLU, Linear(int(C / 16), C) with bias, sigmoid, channel-wise scale. That is the SE slot of timm's ResNet blocks.

Paddle weight layout of one SE (`<block>.se.*`; `fc_squeeze` / `fc_excitation`, named `squeeze` / `excitation` in the
older dygraph version of the file) -> this module (`<block>.se.fc1` / `fc2`):
* `fc_squeeze.weight` [C, C // 16] -> `fc1.weight` [C // 16, C] (transpose), `fc_squeeze.bias` [C // 16] -> `fc1.bias`
* `fc_excitation.weight` [C // 16, C] -> `fc2.weight` [C, C // 16] (transpose), `fc_excitation.bias` [C] -> `fc2.bias`
with C = 64/128/256/512 in the branches, 256 in stage 1 and 128/256/512/1024 in the incre head.
"""
from typing import TYPE_CHECKING, Any, Optional, Type

import torch
import torch.nn as nn

from timm.models import build_model_with_cfg
from timm.models._builder import pretrained_cfg_for_features
from timm.models.hrnet import HighResolutionNet, HighResolutionNetFeatures, cfg_cls
from timm.models.resnet import BasicBlock, Bottleneck

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__ = ['SqueezeExciteLinear', 'SeHighResolutionNet', 'SeHighResolutionNetFeatures']


class SqueezeExciteLinear(nn.Module):
    """Squeeze-excitation with Linear layers on the pooled vector (PaddleClas HRNet `SELayer`)."""

    def __init__(
            self,
            channels: int,
            reduction: int = 16,
            act_layer: Type[nn.Module] = nn.ReLU,
            gate_layer: Type[nn.Module] = nn.Sigmoid,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        rd_channels = int(channels / reduction)
        self.fc1 = nn.Linear(channels, rd_channels, **dd)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Linear(rd_channels, channels, **dd)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = x.mean((2, 3))
        x_se = self.fc2(self.act(self.fc1(x_se)))
        return x * self.gate(x_se)[:, :, None, None]


def _add_se(model: nn.Module, reduction: int, device=None, dtype=None) -> None:
    """Fill the (empty) SE slot of every timm ResNet block in the model."""
    for m in model.modules():
        if isinstance(m, Bottleneck):
            m.se = SqueezeExciteLinear(m.conv3.out_channels, reduction, device=device, dtype=dtype)
        elif isinstance(m, BasicBlock):
            m.se = SqueezeExciteLinear(m.conv2.out_channels, reduction, device=device, dtype=dtype)


class SeHighResolutionNet(HighResolutionNet):
    """timm HighResolutionNet with a Linear SE module in every BasicBlock / Bottleneck."""

    if TYPE_CHECKING:  # for the type checker only: TorchScript cannot type these class annotations
        pretrained_cfg: dict[str, Any]
        default_cfg: dict[str, Any]

    def __init__(self, cfg: dict, se_reduction: int = 16, **kwargs):
        super().__init__(cfg, **kwargs)
        _add_se(self, se_reduction, device=kwargs.get('device'), dtype=kwargs.get('dtype'))


class SeHighResolutionNetFeatures(SeHighResolutionNet, HighResolutionNetFeatures):
    """Feature extraction variant (stem + incre / branch features) of SeHighResolutionNet."""


def _create_se_hrnet(
        variant: str,
        pretrained: bool = False,
        cfg_variant: Optional[str] = None,
        **kwargs,
) -> SeHighResolutionNet:
    model_cls = SeHighResolutionNet
    features_mode = ''
    kwargs_filter = None
    if kwargs.pop('features_only', False):
        if 'feature_cls' in kwargs or 'feature_cls' in kwargs.get('feature_cfg', {}):
            features_mode = 'cfg'
        else:
            model_cls = SeHighResolutionNetFeatures
            kwargs_filter = ('num_classes', 'global_pool')
            features_mode = 'cls'
    pretrained_strict = kwargs.pop(
        'pretrained_strict',
        features_mode != 'cls' and kwargs.get('head', 'classification') == 'classification',
    )
    model = build_model_with_cfg(
        model_cls,
        variant,
        pretrained,
        model_cfg=cfg_cls[cfg_variant or variant],
        pretrained_strict=pretrained_strict,
        kwargs_filter=kwargs_filter,  # type: ignore[arg-type]  # timm's Tuple[str] means a tuple of any length
        features_only=features_mode == 'cfg',
        **kwargs,
    )
    if features_mode == 'cls':
        model.pretrained_cfg = pretrained_cfg_for_features(model.default_cfg)
        model.default_cfg = model.pretrained_cfg
    return model


_ARCH_FACTS = dict(first_conv='conv1', classifier='classifier', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({name: _ARCH_FACTS for name in ('se_hrnet_w64c_ssld',)})


@register_zoo_model
def se_hrnet_w64c_ssld(pretrained: bool = False, **kwargs) -> SeHighResolutionNet:
    """PaddleClas SE_HRNet_W64_C (SSLD)."""
    kwargs.setdefault('head_conv_bias', False)
    return _create_se_hrnet('se_hrnet_w64c_ssld', pretrained, cfg_variant='hrnet_w64', **kwargs)
