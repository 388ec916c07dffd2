"""ResNet34/50/101_vd (PaddleClas `legendary_models/resnet.py` and the older `model_zoo/resnet_vd.py` naming).

Legendary keys: `stem.{0,1,2}.{conv,bn}`, flat `blocks.{k}.{conv0,conv1,conv2,short}.{conv,bn}`, `fc`. The older
dygraph files (`ResNet50_vd_ssld_v2`, `Fix_ResNet50_vd_ssld_v2`) use `conv1_{1,2,3}.{_conv,_batch_norm}`,
`bb_{stage}_{i}.{conv0,conv1,conv2,short}.{_conv,_batch_norm}` and `out`. Both map onto timm `resnet50d`/`resnet101d`
unchanged and onto the zoo's `resnet34d_ssld` (timm `resnet34d` plus the `layer1.0` shortcut Paddle adds).
"""
from __future__ import annotations

import re

from ssld_zoo.convert._base import Arrays, Rule, converter, rename, stage_index

_DEPTHS = {"resnet34d_ssld": (3, 4, 6, 3), "resnet50d_ssld": (3, 4, 6, 3), "resnet101d_ssld": (3, 4, 23, 3)}
_STEM = {"1": ("conv1.0", "conv1.1"), "2": ("conv1.3", "conv1.4"), "3": ("conv1.6", "bn1")}
_LAYER = "conv|bn|_conv|_batch_norm"


def _part(layer: str, conv: str, bn: str) -> str:
    return conv if layer in ("conv", "_conv") else bn


def _block(stage: int, index: int, match: "re.Match[str]") -> str:
    sub, layer, leaf = match["sub"], match["layer"], match["leaf"]
    if sub == "short":
        module = _part(layer, "downsample.1", "downsample.2")
    else:
        n = int(sub[-1]) + 1
        module = _part(layer, f"conv{n}", f"bn{n}")
    return f"layer{stage + 1}.{index}.{module}.{leaf}"


@converter(*_DEPTHS)
def convert(arrays: Arrays, name: str) -> Arrays:
    """Rename legendary or older PaddleClas ResNet_vd keys to timm ResNet keys."""
    flat = stage_index(_DEPTHS[name])
    block = rf"\.(?P<sub>conv[0-2]|short)\.(?P<layer>{_LAYER})\.(?P<leaf>\w+)"
    rules: list[Rule] = [
        (rf"stem\.([0-2])\.({_LAYER})\.(\w+)",
         lambda m: f"{_part(m[2], *_STEM[str(int(m[1]) + 1)])}.{m[3]}"),
        (rf"conv1_([1-3])\.({_LAYER})\.(\w+)", lambda m: f"{_part(m[2], *_STEM[m[1]])}.{m[3]}"),
        (rf"blocks\.(?P<k>\d+){block}", lambda m: _block(*flat(int(m["k"])), m)),
        (rf"bb_(?P<s>\d)_(?P<i>\d+){block}", lambda m: _block(int(m["s"]), int(m["i"]), m)),
        (r"(?:fc|out)\.(weight|bias)", r"fc.\1"),
    ]
    return rename(arrays, rules, model=name)
