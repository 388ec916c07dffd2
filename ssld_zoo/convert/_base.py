"""The machinery every family converter shares: Paddle→PyTorch layout, key renaming rules, and the strict fit check.

A family converter is a function `(arrays, name) -> arrays` registered with `@converter(...)` for the zoo names it
serves. It receives the Paddle state dict already in PyTorch layout (see `to_torch_layout`) and returns it under timm
key names, applying any numeric folds the architecture needs. `fit_to_model` then checks the result against the
target model's own state dict: every missing, unexpected or mis-shaped key is reported at once, so nothing is ever
loaded partially.
"""
from __future__ import annotations

import functools
import re
from typing import Callable, Iterable, Sequence, Union

import numpy as np

from ssld_zoo.errors import ConversionError, InvalidWeightsError
from ssld_zoo.models.checks import state_mismatch

Arrays = dict[str, np.ndarray]
Replacement = Union[str, Callable[["re.Match[str]"], str]]
Rule = tuple[str, Replacement]
Converter = Callable[[Arrays, str], Arrays]

CONVERTERS: dict[str, Converter] = {}
_BN_STATS = {"_mean": "running_mean", "_variance": "running_var"}
_COUNTER, _VARIANCE = ".num_batches_tracked", ".running_var"


def converter(*names: str) -> Callable[[Converter], Converter]:
    """Register `fn` as the converter for the given zoo model names."""
    def register(fn: Converter) -> Converter:
        for name in names:
            CONVERTERS[name] = fn
        return fn
    return register


def to_torch_layout(paddle: Arrays) -> Arrays:
    """Paddle conventions → PyTorch: BN `_mean`/`_variance` → `running_mean`/`running_var`, and every 2-D array (in
    these models always a `Linear` weight, stored `[in, out]`) transposed to `[out, in]`."""
    out: Arrays = {}
    for key, value in paddle.items():
        prefix, _, leaf = key.rpartition(".")
        key = f"{prefix}.{_BN_STATS.get(leaf, leaf)}" if prefix else key
        out[key] = np.ascontiguousarray(value.T) if value.ndim == 2 else value
    return out


def rename(arrays: Arrays, rules: Sequence[Rule], *, model: str) -> Arrays:
    """Rename every key with the first rule whose pattern matches the whole key (`re.fullmatch`).

    A replacement is an `re` template (`r"layer\\1.\\2"`) or a function of the match. Keys that no rule matches are
    reported together as unexpected.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: Arrays = {}
    unmatched = []
    for key, value in arrays.items():
        for pattern, repl in compiled:
            match = pattern.fullmatch(key)
            if match:
                new = repl(match) if callable(repl) else match.expand(repl)
                if new in out:
                    raise ConversionError(f"Two PaddleClas keys map to '{new}' for {model}; the converter rules "
                                          "are wrong, please report it.")
                out[new] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise ConversionError(f"The PaddleClas weights have {len(unmatched)} key(s) that {model} has no place for, "
                              f"e.g. {_sample(unmatched)}. Is this the .pdparams file of "
                              f"{_paddle_name(model)}? Check --model.")
    return out


def stage_index(depths: Sequence[int]) -> Callable[[int], tuple[int, int]]:
    """Map a flat block index over stages of the given depths to `(stage, index within stage)`."""
    pairs = [(stage, i) for stage, depth in enumerate(depths) for i in range(depth)]

    def lookup(flat: int) -> tuple[int, int]:
        if flat >= len(pairs):
            raise ConversionError(f"Block index {flat} is out of range for stage depths {list(depths)}.")
        return pairs[flat]
    return lookup


def fill(arrays: Arrays, keys: Iterable[str], shapes: dict[str, tuple[int, ...]], value: float = 0.0) -> Arrays:
    """Add constant tensors for keys the Paddle model lacks but the timm one has (e.g. a head bias Paddle omits)."""
    for key in keys:
        arrays[key] = np.full(shapes[key], value, dtype=np.float32)
    return arrays


def fold_inference_dropout(arrays: Arrays, weight_key: str, p: float) -> Arrays:
    """Fold Paddle's `Dropout(p, mode="downscale_in_infer")`, which multiplies its output by `1 - p` at inference
    (PyTorch's dropout is the identity there), into the weight (not the bias) of the linear layer it feeds. A file
    without that layer is left as it is: the fit check then names every missing key in one `ConversionError`."""
    if weight_key in arrays:
        arrays[weight_key] = arrays[weight_key] * np.float32(1.0 - p)
    return arrays


@functools.lru_cache(maxsize=None)
def target_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the state dict of zoo model `name`, built on the meta device (no memory, no init cost)."""
    import timm
    import torch
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def fit_to_model(arrays: Arrays, name: str) -> Arrays:
    """Check converted arrays against the model's state dict, strictly; add `num_batches_tracked` counters.

    A Paddle `Linear` used on a pooled vector becomes a 1x1 conv when the target has one (`[out, in]` → `[out, in,
    1, 1]`); any other difference is an error listing every missing, unexpected and mis-shaped key.
    """
    shapes = target_shapes(name)
    out: Arrays = {}
    for key, value in arrays.items():
        expected = shapes.get(key)
        if expected is not None and value.ndim == 2 and expected == (*value.shape, 1, 1):
            value = value.reshape(expected)
        out[key] = value
    for key, shape in shapes.items():
        if key.endswith(_COUNTER) and key not in out:
            out[key] = np.zeros(shape, dtype=np.int64)
    mismatch = state_mismatch(shapes, {k: v.shape for k, v in out.items()})
    if mismatch:
        raise ConversionError(f"The converted PaddleClas weights do not fit {name}: {mismatch}. Is this "
                              f"the .pdparams file of {_paddle_name(name)}? Check --model.")
    check_values(out, name)
    return out


def check_values(arrays: Arrays, name: str) -> None:
    """Refuse converted weights that no model should load, naming the first bad tensor: every tensor but
    BatchNorm's `num_batches_tracked` counters (added here) is floating point (no integer, bool or complex weights)
    and finite, and every BatchNorm running variance is >= 0 (a negative one turns predictions into NaN)."""
    for key, value in arrays.items():
        if key.endswith(_COUNTER):
            continue
        problem = (f"is {value.dtype}, not a floating-point tensor" if value.dtype.kind != "f"
                   else "holds NaN or infinite values" if not np.isfinite(value).all()
                   else "holds negative BatchNorm variances" if key.endswith(_VARIANCE) and (value < 0).any()
                   else None)
        if problem:
            raise InvalidWeightsError(f"The converted PaddleClas weights for {name} cannot be used: '{key}' "
                                      f"{problem}; nothing was written. The .pdparams file is damaged or not "
                                      f"PaddleClas's: download it again.", key=key)


def _sample(keys: Sequence[str], n: int = 3) -> str:
    return ", ".join(f"'{k}'" for k in keys[:n]) + (", ..." if len(keys) > n else "")


def _paddle_name(name: str) -> str:
    from ssld_zoo.catalogue.registry import get_model_entry
    return f"PaddleClas {get_model_entry(name).data.get('paddle_name') or name}"
