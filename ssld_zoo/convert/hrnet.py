"""HRNet_W18_C / HRNet_W48_C and SE_HRNet_W64_C (PaddleClas `legendary_models/hrnet.py`).

Keys (paddleclas 2.6): `conv_layer1_{1,2}`, `layer1.{i}.{conv1,conv2,conv3,conv_down}`, `conv_tr1_1`, `conv_tr1_2`,
`conv_tr2`, `conv_tr3`, `st{2,3,4}.stage_func_list.{m}.basic_block_list.{b}.{j}.{conv1,conv2}`,
`st{s}.stage_func_list.{m}.fuse_func.residual_func_list.{n}`, `last_cls.func_list.{i}.{conv1,…,conv_down}`,
`cls_head_conv_list.{i}`, `conv_last` (each a ConvBNLayer `.{conv,bn}`), and `fc`. With `has_se=True` every
bottleneck and basic block also has `se.fc_squeeze` / `se.fc_excitation` (Linear, with bias). Earlier legendary
versions of the file (e.g. PaddleClas commit 014f1d1d) name the same layers `._conv` / `._batch_norm`, `tr1_1`,
`tr1_2`, `tr2`, `tr3`, `se.squeeze` / `se.excitation` and `out`; both layouts are accepted. (The 2.0 dygraph file
`ppcls/modeling/architectures/hrnet.py`, with `la1.bb_layer2_*`, `stage_st2_*` names, is a third layout, not
accepted.)

Targets: timm `hrnet_w18_ssld` / `hrnet_w48_ssld` (timm HRNet-C with bias-free head convs) and the zoo's
`se_hrnet_w64c_ssld` (the same plus a Linear SE in every block, `ssld_zoo/models/hrnet_se.py`), which share the
layout: `conv1`/`bn1`, `conv2`/`bn2`, `layer1.{i}`, `transition{1,2,3}`, `stage{s}.{m}.branches.{b}.{j}`,
`stage{s}.{m}.fuse_layers.{i}.{j}[.{k}]`, `incre_modules.{i}.0`, `downsamp_modules.{i}`, `final_layer`,
`classifier`. Paddle's flat fuse list enumerates, for each output branch `i` and input branch `j != i`, one 1x1
ConvBN when `j > i` and `i - j` strided 3x3 ConvBNs when `j < i`, which is timm's order. No numeric folds: HRNet has
no dropout, and the SE Linear weights are only transposed (done for every 2-D array before the rules run).
"""
from __future__ import annotations

import re

from ssld_zoo.errors import ConversionError
from ssld_zoo.convert._base import Arrays, Rule, converter, rename


def _fuse_paths(branches: int) -> list[str]:
    """timm `fuse_layers` paths in Paddle's `residual_func_list` order, for a module with `branches` branches."""
    paths = []
    for i in range(branches):
        for j in range(branches):
            if j > i:
                paths.append(f"{i}.{j}")
            elif j < i:
                paths.extend(f"{i}.{j}.{k}" for k in range(i - j))
    return paths


_FUSE = {stage: _fuse_paths(stage) for stage in (2, 3, 4)}  # stage s has s branches
_CONV_BN = r"(?P<layer>conv|bn|_conv|_batch_norm)\.(?P<leaf>\w+)"
_BLOCK = (rf"(?P<sub>conv[1-3]|conv_down)\.{_CONV_BN}"
          r"|se\.(?:fc_)?(?P<se>squeeze|excitation)\.(?P<se_leaf>weight|bias)")
_SE = {"squeeze": "fc1", "excitation": "fc2"}


def _conv_bn(match: "re.Match[str]", conv: str, bn: str) -> str:
    return f"{conv if match['layer'] in ('conv', '_conv') else bn}.{match['leaf']}"


def _block(match: "re.Match[str]") -> str:
    """The part of a timm Bottleneck / BasicBlock key below the block."""
    if match["se"]:
        return f"se.{_SE[match['se']]}.{match['se_leaf']}"
    if match["sub"] == "conv_down":
        return _conv_bn(match, "downsample.0", "downsample.1")
    n = match["sub"][-1]
    return _conv_bn(match, f"conv{n}", f"bn{n}")


def _fuse(match: "re.Match[str]") -> str:
    stage, module, index = int(match["s"]), match["m"], int(match["n"])
    if index >= len(_FUSE[stage]):
        raise ConversionError(f"Fuse layer {index} is out of range for an HRNet stage with {stage} branches.")
    return f"stage{stage}.{module}.fuse_layers.{_FUSE[stage][index]}.{_conv_bn(match, '0', '1')}"


_TRANSITIONS = {"tr1_1": "transition1.0", "tr1_2": "transition1.1.0", "tr2": "transition2.2.0",
                "tr3": "transition3.3.0"}


@converter("hrnet_w18c_ssld", "hrnet_w48c_ssld", "se_hrnet_w64c_ssld")
def convert(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas (SE_)HRNet-C keys, either legendary layout, to timm HRNet keys."""
    rules: list[Rule] = [
        (rf"conv_layer1_(?P<i>[12])\.{_CONV_BN}", lambda m: _conv_bn(m, f"conv{m['i']}", f"bn{m['i']}")),
        (rf"layer1\.(?P<i>\d+)\.(?:{_BLOCK})", lambda m: f"layer1.{m['i']}.{_block(m)}"),
        (rf"(?:conv_)?(?P<tr>tr1_1|tr1_2|tr2|tr3)\.{_CONV_BN}",
         lambda m: f"{_TRANSITIONS[m['tr']]}.{_conv_bn(m, '0', '1')}"),
        (rf"st(?P<s>[2-4])\.stage_func_list\.(?P<m>\d+)\.basic_block_list\.(?P<b>\d+)\.(?P<j>\d+)\.(?:{_BLOCK})",
         lambda m: f"stage{m['s']}.{m['m']}.branches.{m['b']}.{m['j']}.{_block(m)}"),
        (rf"st(?P<s>[2-4])\.stage_func_list\.(?P<m>\d+)\.fuse_func\.residual_func_list\.(?P<n>\d+)\.{_CONV_BN}", _fuse),
        (rf"last_cls\.func_list\.(?P<i>\d+)\.(?:{_BLOCK})", lambda m: f"incre_modules.{m['i']}.0.{_block(m)}"),
        (rf"cls_head_conv_list\.(?P<i>\d+)\.{_CONV_BN}",
         lambda m: f"downsamp_modules.{m['i']}.{_conv_bn(m, '0', '1')}"),
        (rf"conv_last\.{_CONV_BN}", lambda m: f"final_layer.{_conv_bn(m, '0', '1')}"),
        (r"(?:fc|out)\.(weight|bias)", r"classifier.\1"),
    ]
    return rename(arrays, rules, model=name)
