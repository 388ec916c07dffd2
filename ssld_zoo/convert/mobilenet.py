"""MobileNetV1 / V2 / V3 (PaddleClas `legendary_models/mobilenet_v1.py`, `model_zoo/mobilenet_v2.py`,
`legendary_models/mobilenet_v3.py`).

Every block below is conv + BN (+ act); Paddle's `conv`/`bn` (legendary) or `_conv`/`_batch_norm` (model_zoo) pairs
become timm's `conv_*`/`bn*` pairs; block indices map to timm's `blocks.{stage}.{index}`.

* MobileNetV1 → stock timm `mobilenetv1_100` (ReLU, catalogue `act_layer`): `conv` = stem, flat
  `blocks.{k}.{depthwise_conv,pointwise_conv}` over timm stages (1, 2, 2, 6, 2), `fc` → `classifier`. No dropout.
* MobileNetV2 (old dygraph naming) → zoo `mobilenetv2_ssld`: `conv1` = stem, `conv{i}._first_block` and
  `conv{i}.conv{i}_{j}` = block `j - 1` of timm stage `i - 2` (`_expand_conv`, `_bottleneck_conv`, `_linear_conv` →
  `conv_pw`, `conv_dw`, `conv_pwl`), `conv9` → `conv_head`/`bn2`, `out` → `classifier`. No dropout.
* MobileNetV3 large/small → zoo `mobilenetv3_*_ssld` (Paddle's `mid // 4` SE widths and slope-0.2 hard-sigmoid gate
  are built into the architecture, so SE weights copy as they are): `conv` = stem, flat `blocks.{k}` over timm
  stages (1, 2, 3, 4, 2, 3) / (1, 2, 3, 2, 3) with `expand_conv`, `bottleneck_conv`, `mid_se.conv{1,2}`,
  `linear_conv`, `last_second_conv` → the final `ConvBnAct` stage, `last_conv` (no bias) → `conv_head`, `fc` →
  `classifier`. Paddle's head dropout (p=0.2) runs in `downscale_in_infer` mode, i.e. multiplies the pre-logits by
  0.8 at inference (`MobileNetV3.__init__`: `Dropout(p=dropout_prob, mode="downscale_in_infer")`), while PyTorch's
  dropout is the identity at inference: the 0.8 is folded into `classifier.weight`.
"""
from __future__ import annotations

import re

from ssld_zoo.convert._base import Arrays, Rule, converter, fold_inference_dropout, rename, stage_index

_CONV = r"(?:conv|_conv)"
_BN = r"(?:bn|_batch_norm)"
_LEAF = r"(?P<leaf>\w+)"
_V1_DEPTHS = (1, 2, 2, 6, 2)
_V1_PARTS = {"depthwise_conv.conv": "conv_dw", "depthwise_conv.bn": "bn1",
             "pointwise_conv.conv": "conv_pw", "pointwise_conv.bn": "bn2"}
_V2_PARTS = {"_expand_conv._conv": "conv_pw", "_expand_conv._batch_norm": "bn1",
             "_bottleneck_conv._conv": "conv_dw", "_bottleneck_conv._batch_norm": "bn2",
             "_linear_conv._conv": "conv_pwl", "_linear_conv._batch_norm": "bn3"}
_V3_DEPTHS = {"mobilenetv3_large_ssld": (1, 2, 3, 4, 2, 3),
              "mobilenetv3_small_ssld": (1, 2, 3, 2, 3),
              "mobilenetv3_small_035_ssld": (1, 2, 3, 2, 3)}
_V3_PARTS = {"expand_conv.conv": "conv_pw", "expand_conv.bn": "bn1",
             "bottleneck_conv.conv": "conv_dw", "bottleneck_conv.bn": "bn2",
             "mid_se.conv1": "se.conv_reduce", "mid_se.conv2": "se.conv_expand",
             "linear_conv.conv": "conv_pwl", "linear_conv.bn": "bn3"}
# PaddleClas MobileNetV3 head dropout probability, applied as x * (1 - p) at inference (downscale_in_infer).
_V3_DROPOUT = 0.2


def _alternatives(parts: dict[str, str]) -> str:
    return "|".join(re.escape(part) for part in parts)


def _stem_rules() -> list[Rule]:
    return [(rf"conv1?\.{_CONV}\.{_LEAF}", r"conv_stem.\g<leaf>"), (rf"conv1?\.{_BN}\.{_LEAF}", r"bn1.\g<leaf>")]


@converter("mobilenetv1_ssld")
def convert_v1(arrays: Arrays, name: str) -> Arrays:
    """Rename legendary PaddleClas MobileNetV1 keys to timm `mobilenetv1_100` keys."""
    flat = stage_index(_V1_DEPTHS)
    rules = [
        *_stem_rules(),
        (rf"blocks\.(\d+)\.({_alternatives(_V1_PARTS)})\.(\w+)",
         lambda m: "blocks.{}.{}.{}.{}".format(*flat(int(m[1])), _V1_PARTS[m[2]], m[3])),
        (r"fc\.(weight|bias)", r"classifier.\1"),
    ]
    return rename(arrays, rules, model=name)


@converter("mobilenetv2_ssld")
def convert_v2(arrays: Arrays, name: str) -> Arrays:
    """Rename old-naming PaddleClas MobileNetV2 keys to the zoo `mobilenetv2_ssld` keys."""
    def block(m: "re.Match[str]") -> str:
        index = int(m["j"]) - 1 if m["j"] else 0
        return f"blocks.{int(m['i']) - 2}.{index}.{_V2_PARTS[m['part']]}.{m['leaf']}"

    rules = [
        *_stem_rules(),
        (rf"conv(?P<i>[2-8])\.(?:_first_block|conv(?P=i)_(?P<j>\d+))\.(?P<part>{_alternatives(_V2_PARTS)})"
         rf"\.{_LEAF}", block),
        (rf"conv9\._conv\.{_LEAF}", r"conv_head.\g<leaf>"),
        (rf"conv9\._batch_norm\.{_LEAF}", r"bn2.\g<leaf>"),
        (r"out\.(weight|bias)", r"classifier.\1"),
    ]
    return rename(arrays, rules, model=name)


@converter(*_V3_DEPTHS)
def convert_v3(arrays: Arrays, name: str) -> Arrays:
    """Rename legendary PaddleClas MobileNetV3 keys to the zoo `mobilenetv3_*_ssld` keys; fold the dropout scale."""
    depths = _V3_DEPTHS[name]
    flat = stage_index(depths)
    rules = [
        *_stem_rules(),
        (rf"blocks\.(\d+)\.({_alternatives(_V3_PARTS)})\.(\w+)",
         lambda m: "blocks.{}.{}.{}.{}".format(*flat(int(m[1])), _V3_PARTS[m[2]], m[3])),
        (rf"last_second_conv\.conv\.{_LEAF}", rf"blocks.{len(depths)}.0.conv.\g<leaf>"),
        (rf"last_second_conv\.bn\.{_LEAF}", rf"blocks.{len(depths)}.0.bn1.\g<leaf>"),
        (r"last_conv\.weight", "conv_head.weight"),
        (r"fc\.(weight|bias)", r"classifier.\1"),
    ]
    return fold_inference_dropout(rename(arrays, rules, model=name), "classifier.weight", _V3_DROPOUT)
