"""PP-HGNet tiny/small/base and PP-HGNetV2 B0-B6 (PaddleClas `legendary_models/pp_hgnet.py`, `pp_hgnet_v2.py`).

PP-HGNet keys: `stem.{i}.{conv,bn}`, `stages.{s}.downsample.{conv,bn}`,
`stages.{s}.blocks.{b}.layers.{l}.{conv,bn}`, `…blocks.{b}.aggregation_conv.{conv,bn}`, `…blocks.{b}.att.conv` (the
ESE 1x1 conv, with bias), `last_conv.weight` (no bias), `fc`. They map onto timm `hgnet_tiny/small/base` with
`stem.{i}` → `stem.stem.{i}`, `aggregation_conv` → `aggregation.0`, `att` → `aggregation.1`, `last_conv` →
`head.last_conv.0`, `fc` → `head.fc`.

PP-HGNetV2 keys: `stem.{stem1,stem2a,stem2b,stem3,stem4}.{conv,bn,lab}`, `stages.…` as above with
`layers.{l}.{conv1,conv2}.*` in light blocks, `aggregation_squeeze_conv` / `aggregation_excitation_conv`, then
`last_conv.weight`, the head's `lab.{scale,bias}` (B0-B3, `use_lab=True`) and `fc`. They map onto timm `hgnetv2_b4`
... `b6` and onto the zoo's `hgnetv2_b0_ssld` ... `b3_ssld` (timm `hgnetv2_b0` ... `b3` with Paddle's stem max-pool
padding, see `ssld_zoo/models/hgnetv2.py`; same keys) with `aggregation_squeeze_conv` → `aggregation.0`,
`aggregation_excitation_conv` → `aggregation.1`, `last_conv` → `head.last_conv.0`, head `lab` →
`head.last_conv.2`, `fc` → `head.fc`. The stage-1 (ImageNet-22k mined) and stage-2 weights of a model share one layout.

Numeric fold: `PPHGNet_base` applies `nn.Dropout(p=0.2, mode="downscale_in_infer")` between the head's ReLU and `fc`,
so Paddle's inference logits are `fc(0.8 x)`; the `fc` weight (not its bias) is multiplied by 0.8, which is exact.
tiny and small (`dropout_prob=0.0`) and every PP-HGNetV2 (`dropout_prob=0.0`) need no fold.
"""
from __future__ import annotations

from ssld_zoo.convert._base import Arrays, converter, fold_inference_dropout, rename

_DROPOUT = {"hgnet_tiny_ssld": 0.0, "hgnet_small_ssld": 0.0, "hgnet_base_ssld": 0.2}
_HGNETV2 = tuple(f"hgnetv2_b{i}_ssld" for i in range(7))


@converter(*_DROPOUT)
def convert_hgnet(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas PP-HGNet keys to timm `hgnet_*` keys and fold the inference dropout scale into `fc`."""
    rules = [
        (r"stem\.(\d+\.(?:conv|bn)\.\w+)", r"stem.stem.\1"),
        (r"(stages\.\d+\.blocks\.\d+)\.aggregation_conv\.(\w+\.\w+)", r"\1.aggregation.0.\2"),
        (r"(stages\.\d+\.blocks\.\d+)\.att\.(conv\.\w+)", r"\1.aggregation.1.\2"),
        (r"stages\.\d+\.(?:downsample|blocks\.\d+\.layers\.\d+)\.(?:conv|bn)\.\w+", r"\g<0>"),
        (r"last_conv\.weight", "head.last_conv.0.weight"),
        (r"fc\.(weight|bias)", r"head.fc.\1"),
    ]
    return fold_inference_dropout(rename(arrays, rules, model=name), "head.fc.weight", _DROPOUT[name])


@converter(*_HGNETV2)
def convert_hgnetv2(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas PP-HGNetV2 keys to timm `hgnetv2_*` keys."""
    rules = [
        (r"stem\.stem(?:1|2a|2b|3|4)\.(?:conv|bn|lab)\.\w+", r"\g<0>"),
        (r"(stages\.\d+\.blocks\.\d+)\.aggregation_squeeze_conv\.(\w+\.\w+)", r"\1.aggregation.0.\2"),
        (r"(stages\.\d+\.blocks\.\d+)\.aggregation_excitation_conv\.(\w+\.\w+)", r"\1.aggregation.1.\2"),
        (r"stages\.\d+\.(?:downsample|blocks\.\d+\.layers\.\d+(?:\.conv[12])?)\.(?:conv|bn|lab)\.\w+", r"\g<0>"),
        (r"last_conv\.weight", "head.last_conv.0.weight"),
        (r"lab\.(scale|bias)", r"head.last_conv.2.\1"),
        (r"fc\.(weight|bias)", r"head.fc.\1"),
    ]
    return rename(arrays, rules, model=name)
