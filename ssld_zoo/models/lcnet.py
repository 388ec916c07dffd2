"""PP-LCNet widths that timm does not register, for the SSLD PPLCNet_x0_25 and PPLCNet_x2_5 weights.

Papers:
* `PP-LCNet: A Lightweight CPU Convolutional Neural Network` - https://arxiv.org/abs/2109.15099
* `Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones` (SSLD)
  - https://arxiv.org/abs/2103.05959

Architecture follows PaddleClas ``ppcls/arch/backbone/legendary_models/pp_lcnet.py``. It is timm's LCNet
(``_gen_lcnet``: ``MobileNetV3`` class, 'dsa' blocks, SE with torch-equal hard sigmoid, 1280-wide head) at the given
width multiplier; timm and Paddle round widths with the same ``make_divisible``. Paddle's ``last_conv`` has no bias,
so the head conv is built with ``head_bias=False``.

Paddle's dropout (p=0.2 by default) runs in ``downscale_in_infer`` mode, so Paddle scales the pre-logits by 0.8 at
inference. Here a plain dropout (identity in eval) is used and the weight converter folds the 0.8 into
``classifier.weight``.
"""
from typing import Any

from timm.models.mobilenetv3 import MobileNetV3, _gen_lcnet

from ssld_zoo.models._zoo import register_zoo_model, zoo_default_cfgs

__all__: list[str] = []


def _gen_lcnet_ssld(variant: str, multiplier: float, pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    """Build PaddleClas ``PPLCNet_x{multiplier}``."""
    model_kwargs: dict[str, Any] = dict(head_bias=False, drop_rate=0.2)
    model_kwargs.update(kwargs)
    return _gen_lcnet(variant, multiplier, pretrained=pretrained, **model_kwargs)


_ARCH_FACTS = dict(first_conv='conv_stem', classifier='classifier', pool_size=(7, 7))
default_cfgs = zoo_default_cfgs({name: _ARCH_FACTS for name in (
    'lcnet_025_ssld', 'lcnet_250_ssld',
)})


@register_zoo_model
def lcnet_025_ssld(pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    """PPLCNet_x0_25 (PaddleClas)."""
    return _gen_lcnet_ssld('lcnet_025_ssld', 0.25, pretrained=pretrained, **kwargs)


@register_zoo_model
def lcnet_250_ssld(pretrained: bool = False, **kwargs: Any) -> MobileNetV3:
    """PPLCNet_x2_5 (PaddleClas)."""
    return _gen_lcnet_ssld('lcnet_250_ssld', 2.5, pretrained=pretrained, **kwargs)
