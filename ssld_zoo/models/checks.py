"""Checks of a built model that every way of loading weights shares."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ssld_zoo.errors import InvalidWeightsError

_NOT_STATE_KEYS = ("num_batches_tracked",)  # BatchNorm's counter: absent from many published files, never used


def shapes_of(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """key -> shape of a state dict's tensors."""
    return {k: tuple(v.shape) for k, v in state.items()}


def state_mismatch(own: Mapping[str, Sequence[int]], given: Mapping[str, Sequence[int]]) -> str:
    """How weights (`given`: key -> shape) fail to fit a model (`own`), in one line naming the first few keys of each
    kind: missing, unexpected, of another shape. Empty when they fit."""
    missing = [k for k in own if k not in given and not k.endswith(_NOT_STATE_KEYS)]
    unexpected = [k for k in given if k not in own]
    shapes = [f"{k} is {list(given[k])} in the file, {list(v)} in the model" for k, v in own.items()
              if k in given and tuple(given[k]) != tuple(v)]
    return "; ".join(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                     for label, keys in (("missing key(s)", missing), ("unexpected key(s)", unexpected),
                                         ("tensor(s) of another shape", shapes)) if keys)


def check_finite(model: Any, source: str) -> Any:
    """`model`, refused with one clear error when a weight it loaded is NaN or infinite (a damaged file: a sha256
    check cannot catch it when the damage was there before the file was pinned)."""
    import torch
    bad = [key for key, tensor in model.state_dict().items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise InvalidWeightsError(f"The weights from {source} hold NaN or infinite values in {len(bad)} tensor(s), "
                                  f"e.g. {bad[0]}; the file is damaged. Download, convert or train it again.",
                                  path=source, key=bad[0])
    return model
