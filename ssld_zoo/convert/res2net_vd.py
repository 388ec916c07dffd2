"""Res2Net50/101/200_vd_26w_4s (PaddleClas `ppcls/arch/backbone/model_zoo/res2net_vd.py`, old dygraph naming).

Paddle keys: stem `conv1_{1,2,3}`; blocks `bb_{stage}_{i}.{conv0,conv2,short}` plus the three split convs, which
`add_sublayer` registers under their static names `bb_{stage}_{i}.res{N}{x}_branch2b_{m}` (`x` a letter, or
`a`/`b{i}` in stage 3 of the 101/200 models, e.g. `res4b22_branch2b_3`); every conv-BN pair is `<name>._conv` /
`<name>._batch_norm`; classifier `out` (Linear).
They map onto the zoo's `res2net{50,101,200}d_ssld` (`ssld_zoo/models/res2net_vd.py`: timm `ResNet` with a
Paddle-faithful `Bottle2neck`): `conv0`→`conv1`/`bn1`, `branch2b_m`→`convs.{m-1}`/`bns.{m-1}`, `conv2`→`conv3`/`bn3`,
`short`→`downsample.1`/`.2` (after the avg-pool), `out`→`fc`. Pure renaming: no numeric fold is needed.
"""
from __future__ import annotations

import re

from ssld_zoo.convert._base import Arrays, Rule, converter, rename

_STEM = {"1": ("conv1.0", "conv1.1"), "2": ("conv1.3", "conv1.4"), "3": ("conv1.6", "bn1")}
_BLOCK = {"conv0": ("conv1", "bn1"), "conv2": ("conv3", "bn3"), "short": ("downsample.1", "downsample.2")}


def _module(layer: str, conv: str, bn: str) -> str:
    return conv if layer == "_conv" else bn


def _block(match: "re.Match[str]") -> str:
    sub, layer, leaf = match["sub"], match["layer"], match["leaf"]
    if match["split"]:
        m = int(match["split"]) - 1
        module = _module(layer, f"convs.{m}", f"bns.{m}")
    else:
        module = _module(layer, *_BLOCK[sub])
    return f"layer{int(match['s']) + 1}.{match['i']}.{module}.{leaf}"


@converter("res2net50d_ssld", "res2net101d_ssld", "res2net200d_ssld")
def convert(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas Res2Net_vd keys to the zoo's timm-style Res2Net-D keys."""
    sub = r"(?P<sub>conv0|conv2|short|res[2-5](?:[a-z]|b\d+)_branch2b_(?P<split>[1-3]))"
    rules: list[Rule] = [
        (r"conv1_([1-3])\.(_conv|_batch_norm)\.(\w+)", lambda m: f"{_module(m[2], *_STEM[m[1]])}.{m[3]}"),
        (rf"bb_(?P<s>[0-3])_(?P<i>\d+)\.{sub}\.(?P<layer>_conv|_batch_norm)\.(?P<leaf>\w+)", _block),
        (r"out\.(weight|bias)", r"fc.\1"),
    ]
    return rename(arrays, rules, model=name)
