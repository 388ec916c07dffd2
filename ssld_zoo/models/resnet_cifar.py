"""CIFAR ResNet-20/32/44/56 as built by akamaster/pytorch_resnet_cifar10, for its CIFAR-10 teacher weights.

Papers:
* `Deep Residual Learning for Image Recognition` (Section 4.2, CIFAR-10) - https://arxiv.org/abs/1512.03385

Architecture follows ``resnet.py`` of https://github.com/akamaster/pytorch_resnet_cifar10 (BSD-2-Clause): a 3x3
3->16 stem (conv, BN, ReLU; no pooling), three stages of ``n`` BasicBlocks 16/32/64 wide with strides 1/2/2
(ResNet-6n+2), global average pooling and ``linear`` 64->10. Shortcuts are "option A": identity, or for the first
block of stages 2 and 3 the input subsampled 2x and zero-padded to twice the channels, with no parameters. Module
names equal upstream's, so a checkpoint loads strictly once DataParallel's ``module.`` prefix is removed. Upstream
pools with an ``out.size()[3]`` kernel; global pooling is the same for the square inputs it was made for.
"""
from typing import Any, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, checkpoint_seq
from timm.models._features import feature_take_indices

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__ = ['ResNetCifar', 'BasicBlockCifar', 'PadShortcut']


class PadShortcut(nn.Module):
    """Option-A shortcut: keep every other row and column, zero-pad the channels equally on both sides."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        """
        Args:
            in_chs: Input channels.
            out_chs: Output channels (``in_chs`` plus an even number of zero channels).
        """
        super().__init__()
        self.pad = (out_chs - in_chs) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlockCifar(nn.Module):
    """Two 3x3 conv + BN layers, ReLU after the first and after the residual sum."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, device: Any = None, dtype: Any = None) -> None:
        """
        Args:
            in_chs: Input channels.
            out_chs: Output channels.
            stride: Stride of the first conv (and subsampling of the shortcut).
            device: Device of the parameters.
            dtype: Dtype of the parameters.
        """
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(out_chs, **dd)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(out_chs, **dd)
        self.act2 = nn.ReLU(inplace=True)
        self.shortcut = PadShortcut(in_chs, out_chs) if stride != 1 or in_chs != out_chs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) for 32x32 images with parameter-free shortcuts (He et al. 2016, Section 4.2)."""

    def __init__(
            self,
            blocks: int,
            num_classes: int = 10,
            in_chans: int = 3,
            widths: tuple[int, int, int] = (16, 32, 64),
            global_pool: str = 'avg',
            drop_rate: float = 0.0,
            device: Any = None,
            dtype: Any = None,
    ) -> None:
        """
        Args:
            blocks: Blocks per stage, n (depth 6n+2: 3 for ResNet-20, 9 for ResNet-56).
            num_classes: Classifier outputs; 0 for no classifier.
            in_chans: Input channels.
            widths: Channels of the three stages (the stem has ``widths[0]``).
            global_pool: timm pooling type before the classifier.
            drop_rate: Dropout before the classifier.
            device: Device of the parameters.
            dtype: Dtype of the parameters.
        """
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        dd = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(widths[0], **dd)
        self.act1 = nn.ReLU(inplace=True)
        self.feature_info: list[dict[str, Any]] = [dict(num_chs=widths[0], reduction=1, module='act1')]
        in_chs, reduction = widths[0], 1
        layers: list[nn.Sequential] = []
        for i, (width, stride) in enumerate(zip(widths, (1, 2, 2))):
            layers.append(nn.Sequential(*[
                BasicBlockCifar(in_chs if b == 0 else width, width, stride if b == 0 else 1, **dd)
                for b in range(blocks)]))
            in_chs, reduction = width, reduction * stride
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=f'layer{i + 1}'))
        self.layer1, self.layer2, self.layer3 = layers
        self.num_features = self.head_hidden_size = in_chs
        self.global_pool, self.linear = create_classifier(in_chs, num_classes, pool_type=global_pool, **dd)

        for m in self.modules():  # upstream's _weights_init; BN keeps PyTorch's defaults
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Parameter groups for layer-wise learning rates: the stem, then each stage (coarse) or block (fine)."""
        return dict(stem=r'^conv1|bn1', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the stages' activations in the backward pass instead of storing them."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.linear

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier with a fresh one for `num_classes` (0: no classifier, pooled features out)."""
        self.num_classes = num_classes
        pool_type = self.global_pool.pool_type if global_pool is None else global_pool
        self.global_pool, self.linear = create_classifier(self.num_features, num_classes, pool_type=pool_type,
                                                          device=self.conv1.weight.device,
                                                          dtype=self.conv1.weight.dtype)
        self.global_pool.train(self.training)
        self.linear.train(self.training)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, list[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Features of the stem (index 0) and of each stage (1-3), as timm's ``forward_intermediates``.

        Args:
            x: Input images.
            indices: Take the last n levels if int, all if None, those listed if a sequence.
            norm: Unused (no final norm layer); kept for the timm interface.
            stop_early: Stop after the last requested level.
            output_fmt: Only 'NCHW'.
            intermediates_only: Return only the intermediate features.
        """
        assert output_fmt == 'NCHW', 'Output shape must be NCHW.'
        take_indices, max_index = feature_take_indices(4, indices)
        intermediates = []
        x = self.act1(self.bn1(self.conv1(x)))
        if 0 in take_indices:
            intermediates.append(x)
        layers = (self.layer1, self.layer2, self.layer3)
        for feat_idx, layer in enumerate(layers[:max_index] if stop_early else layers, start=1):
            x = layer(x)
            if feat_idx in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, list[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the last of `indices` (and the head), as timm's models do; returns the indices kept.

        Args:
            indices: Take the last n levels if int, all if None, those listed if a sequence.
            prune_norm: Unused (no final norm layer); kept for the timm interface.
            prune_head: Also remove the classifier.
        """
        take_indices, max_index = feature_take_indices(4, indices)
        for name in ('layer1', 'layer2', 'layer3')[max_index:]:
            setattr(self, name, nn.Sequential())  # empty, so the stage loop and checkpoint_seq still run through
        if max_index < 3:  # the features now end at the last kept level, so the head sized for layer3 goes too
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or max_index < 3:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq([self.layer1, self.layer2, self.layer3], x, flatten=True)
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_resnet_cifar(variant: str, blocks: int, pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    return build_model_with_cfg(
        ResNetCifar,
        variant,
        pretrained,
        blocks=blocks,
        feature_cfg=dict(out_indices=(0, 1, 2, 3)),
        **kwargs,
    )


_ARCH_FACTS = dict(first_conv='conv1', classifier='linear', pool_size=(8, 8))
default_cfgs = zoo_default_cfgs({name: _ARCH_FACTS for name in (
    'resnet20_cifar', 'resnet32_cifar', 'resnet44_cifar', 'resnet56_cifar',
)})


@register_zoo_model
def resnet20_cifar(pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    """ResNet-20 for CIFAR (akamaster), 3 blocks per stage."""
    return _create_resnet_cifar('resnet20_cifar', 3, pretrained, **kwargs)


@register_zoo_model
def resnet32_cifar(pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    """ResNet-32 for CIFAR (akamaster), 5 blocks per stage."""
    return _create_resnet_cifar('resnet32_cifar', 5, pretrained, **kwargs)


@register_zoo_model
def resnet44_cifar(pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    """ResNet-44 for CIFAR (akamaster), 7 blocks per stage."""
    return _create_resnet_cifar('resnet44_cifar', 7, pretrained, **kwargs)


@register_zoo_model
def resnet56_cifar(pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    """ResNet-56 for CIFAR (akamaster), 9 blocks per stage."""
    return _create_resnet_cifar('resnet56_cifar', 9, pretrained, **kwargs)
