"""PP-LCNet and PP-LCNetV2 (PaddleClas `legendary_models/pp_lcnet.py`, `legendary_models/pp_lcnet_v2.py`).

* PPLCNet x0.25 / x0.5 / x1.0 / x2.5 → timm `lcnet_050` / `lcnet_100` and the zoo's `lcnet_025_ssld` /
  `lcnet_250_ssld` (the same timm LCNet at the other widths, without a head bias). Keys: `conv1.{conv,bn}` = stem,
  `blocks{N}.{j}.{dw_conv,pw_conv}.{conv,bn}` and `blocks{N}.{j}.se.conv{1,2}` over Paddle groups N = 2..6 of
  (1, 2, 2, 6, 2) blocks, which timm splits into stages of (1, 2, 2, 2, 4, 2) (`blocks5` holds the 3x3 and the 5x5
  blocks, timm stages 3 and 4), `last_conv` → `conv_head`, `fc` → `classifier`. Paddle's `last_conv` has no bias:
  where the timm model has `conv_head.bias` it is zero, which is exact.
* PPLCNetV2_base → timm `lcnetv2_base` (the training-time, un-fused form of the re-parameterisable blocks, as the
  SSLD weights are). Keys equal timm's except `se.conv{1,2}` → `se.fc{1,2}`, `pw_conv_{1,2}` → `pw_conv.{0,1}`,
  `last_conv` → `conv_head`, `fc` → `classifier`. A block with `use_rep` also holds a plain `dw_conv` (conv with
  bias) that `RepDepthwiseSeparable.forward` reads only after `re_parameterize()` (`is_repped`, which is not saved
  and is False in every model PaddleClas builds to load weights into); it is dropped, because the `dw_conv_list`
  branches next to it are what PaddleClas computes with.

Both heads end with `Dropout(p=0.2, mode="downscale_in_infer")` (the default of `PPLCNet`, and the value
`PPLCNetV2_base` passes), which multiplies the pre-logits by 0.8 at inference, while PyTorch's dropout is the
identity at inference: the 0.8 is folded into `classifier.weight`.
"""
from __future__ import annotations

import re

from ssld_zoo.errors import ConversionError
from ssld_zoo.convert._base import (Arrays, Rule, converter, fill, fold_inference_dropout, rename, stage_index,
                                    target_shapes)

# PaddleClas head dropout probability, applied as x * (1 - p) at inference (downscale_in_infer).
_DROPOUT = 0.2
_LCNET_GROUPS = (1, 2, 2, 6, 2)  # blocks2 .. blocks6
_LCNET_STAGES = (1, 2, 2, 2, 4, 2)
_LCNET_PARTS = {"dw_conv.conv": "conv_dw", "dw_conv.bn": "bn1", "pw_conv.conv": "conv_pw", "pw_conv.bn": "bn2",
                "se.conv1": "se.conv_reduce", "se.conv2": "se.conv_expand"}
# PPLCNetV2 `dw_conv` of a block with `use_rep`: a conv with bias (`dw_conv.{weight,bias}`) rather than a ConvBNLayer
# (`dw_conv.{conv,bn}.*`), unused by the un-fused forward.
_LCNETV2_UNUSED = re.compile(r"stages\.\d+\.\d+\.dw_conv\.(?:weight|bias)")


@converter("lcnet_025_ssld", "lcnet_050_ssld", "lcnet_100_ssld", "lcnet_250_ssld")
def convert_lcnet(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas PPLCNet keys to timm LCNet keys; zero head bias where timm has one; fold the dropout scale."""
    flat = stage_index(_LCNET_STAGES)
    first = {2 + group: sum(_LCNET_GROUPS[:group]) for group in range(len(_LCNET_GROUPS))}

    def block(m: "re.Match[str]") -> str:
        group, j = int(m["n"]), int(m["j"])
        if j >= _LCNET_GROUPS[group - 2]:
            raise ConversionError(f"PaddleClas key '{m[0]}' names block {j} of blocks{group}, but {name} "
                                  f"has {_LCNET_GROUPS[group - 2]} block(s) there.")
        stage, index = flat(first[group] + j)
        return f"blocks.{stage}.{index}.{_LCNET_PARTS[m['part']]}.{m['leaf']}"

    parts = "|".join(re.escape(part) for part in _LCNET_PARTS)
    rules: list[Rule] = [
        (r"conv1\.conv\.(\w+)", r"conv_stem.\1"),
        (r"conv1\.bn\.(\w+)", r"bn1.\1"),
        (rf"blocks(?P<n>[2-6])\.(?P<j>\d+)\.(?P<part>{parts})\.(?P<leaf>\w+)", block),
        (r"last_conv\.weight", "conv_head.weight"),
        (r"fc\.(weight|bias)", r"classifier.\1"),
    ]
    out = rename(arrays, rules, model=name)
    shapes = target_shapes(name)
    if "conv_head.bias" in shapes:
        fill(out, ["conv_head.bias"], shapes)
    return fold_inference_dropout(out, "classifier.weight", _DROPOUT)


@converter("lcnetv2_base_ssld")
def convert_lcnetv2(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas PPLCNetV2 keys to timm LCNetV2 keys; drop the unused re-parameterised convs; fold the
    dropout scale."""
    rules: list[Rule] = [
        (r"(.+)\.se\.conv([12])\.(\w+)", r"\1.se.fc\2.\3"),
        (r"(.+)\.pw_conv_([12])\.(\w+\.\w+)", lambda m: f"{m[1]}.pw_conv.{int(m[2]) - 1}.{m[3]}"),
        (r"(?:stem|stages)\..+", r"\g<0>"),
        (r"last_conv\.weight", "conv_head.weight"),
        (r"fc\.(weight|bias)", r"classifier.\1"),
    ]
    used = {key: value for key, value in arrays.items() if not _LCNETV2_UNUSED.fullmatch(key)}
    return fold_inference_dropout(rename(used, rules, model=name), "classifier.weight", _DROPOUT)
