"""GhostNet_x1_3 (PaddleClas `ppcls/arch/backbone/model_zoo/ghostnet.py`, old dygraph naming) → timm `ghostnet_130`.

Paddle keys: stem `conv1`, blocks `_ghostbottleneck_{k}` (k = 0..15) with `ghost_module_{1,2}.{primary_conv,
cheap_operation}`, `depthwise_conv` (stride-2 blocks), `se_block.{squeeze,excitation}` (Linear) and
`shortcut_{depthwise,conv}`; then `conv_last`, `fc_0` and the classifier `fc_1` (Linear). Every conv-BN pair is
`<name>._conv` / `<name>._batch_norm`. Block k sits in timm stage `blocks.{s}.{i}` over stage depths
(1, 1, 1, 1, 1, 1, 5, 1, 4); `conv_last` is timm's `blocks.9.0` (`ConvBnAct`).

Folds, each exact:
* SE width: Paddle reduces to `mid // 4` channels (23, 39, 156, 218, 312), timm to `make_divisible(mid / 4, 4)` (24,
  40, 156, 220, 312). The extra timm channels get zero `conv_reduce` rows and biases, so they are ReLU(0) = 0, and
  zero `conv_expand` columns, so they add nothing.
* SE gate: Paddle's `clip(z, 0, 1)` equals timm's `hard_sigmoid(6z - 3) = relu6(6z) / 6`, so `conv_expand` takes
  weight × 6 and bias × 6 − 3.
* Head: Paddle's `fc_0` is a bias-free 1x1 conv + BatchNorm + ReLU on the pooled vector; timm's `conv_head` is a
  biased 1x1 conv + ReLU. The BatchNorm (eps 1e-5) folds into the conv's weight and bias.
* The 0.2 dropout before `fc_1` is Paddle's default `upscale_in_train` mode, an identity at inference: no fold.
"""
from __future__ import annotations

import re

import numpy as np

from ssld_zoo.convert._base import Arrays, Replacement, converter, rename, stage_index, target_shapes

_BLOCK_OF = stage_index((1, 1, 1, 1, 1, 1, 5, 1, 4))
_BN_EPS = 1e-5
_SE_REDUCE_AXIS = {"conv_reduce.weight": 0, "conv_reduce.bias": 0, "conv_expand.weight": 1}  # [out, in] Linears
_BLOCK = r"_ghostbottleneck_(?P<k>\d+)\."
_LAYER = r"\.(?P<layer>_conv|_batch_norm)\.(?P<leaf>\w+)"


def _to(conv: str, bn: str) -> Replacement:
    """Replacement for a Paddle `ConvBNLayer` key: its `_conv` goes to `conv`, its `_batch_norm` to `bn` (inside the
    matched block's timm prefix when the key is a block's)."""
    def replace(match: "re.Match[str]") -> str:
        prefix = "blocks.{}.{}.".format(*_BLOCK_OF(int(match["k"]))) if "k" in match.re.groupindex else ""
        module = conv if match["layer"] == "_conv" else bn
        return f"{prefix}{module.format(**match.groupdict())}.{match['leaf']}"
    return replace


def _fold_se(arrays: Arrays, name: str) -> None:
    """Zero-pad the SE reduce width to timm's and fold the clip(z, 0, 1) gate into `conv_expand` (module docstring).

    Only the reduce axis is padded, and only where timm is wider; any other shape difference is left for the strict
    fit check to report.
    """
    shapes = target_shapes(name)
    for key in [k for k in arrays if ".se." in k and k in shapes]:
        array, axis = arrays[key], _SE_REDUCE_AXIS.get(key.rpartition(".se.")[2])
        target = shapes[key][:array.ndim]
        if axis is not None and array.shape[axis] < target[axis]:
            array = np.pad(array, [(0, target[axis] - array.shape[axis]) if a == axis else (0, 0)
                                   for a in range(array.ndim)])
        if key.endswith("conv_expand.weight"):
            array = array * 6.0
        elif key.endswith("conv_expand.bias"):
            array = array * 6.0 - 3.0
        arrays[key] = array.astype(np.float32)


def _fold_head_bn(arrays: Arrays) -> None:
    """Fold `fc_0`'s BatchNorm into the biased `conv_head`."""
    leaves = ("weight", "bias", "running_mean", "running_var")
    if not all(f"conv_head.bn.{leaf}" in arrays for leaf in leaves) or "conv_head.weight" not in arrays:
        return  # an incomplete head: the strict fit check reports what is missing
    weight = arrays.pop("conv_head.weight")
    gamma, beta, mean, var = (arrays.pop(f"conv_head.bn.{leaf}").astype(np.float64) for leaf in leaves)
    scale = gamma / np.sqrt(var + _BN_EPS)
    arrays["conv_head.weight"] = (weight * scale[:, None, None, None]).astype(np.float32)
    arrays["conv_head.bias"] = (beta - mean * scale).astype(np.float32)


@converter("ghostnet_130_ssld")
def convert(arrays: Arrays, name: str) -> Arrays:
    """Rename PaddleClas GhostNet keys to timm GhostNet keys and apply the SE and head folds."""
    rules = [
        (rf"conv1{_LAYER}", _to("conv_stem", "bn1")),
        (rf"conv_last{_LAYER}", _to("blocks.9.0.conv", "blocks.9.0.bn1")),
        (rf"fc_0{_LAYER}", _to("conv_head", "conv_head.bn")),
        (r"fc_1\.(weight|bias)", r"classifier.\1"),
        (rf"{_BLOCK}ghost_module_(?P<n>[12])\.(?P<op>primary_conv|cheap_operation){_LAYER}",
         _to("ghost{n}.{op}.0", "ghost{n}.{op}.1")),
        (rf"{_BLOCK}depthwise_conv{_LAYER}", _to("conv_dw", "bn_dw")),
        (rf"{_BLOCK}shortcut_depthwise{_LAYER}", _to("shortcut.0", "shortcut.1")),
        (rf"{_BLOCK}shortcut_conv{_LAYER}", _to("shortcut.2", "shortcut.3")),
        (rf"{_BLOCK}se_block\.squeeze\.(weight|bias)",
         lambda m: "blocks.{}.{}.se.conv_reduce.{}".format(*_BLOCK_OF(int(m["k"])), m[2])),
        (rf"{_BLOCK}se_block\.excitation\.(weight|bias)",
         lambda m: "blocks.{}.{}.se.conv_expand.{}".format(*_BLOCK_OF(int(m["k"])), m[2])),
    ]
    out = rename(arrays, rules, model=name)
    _fold_se(out, name)
    _fold_head_bn(out)
    return out
