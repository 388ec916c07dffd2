"""Checks of a built model that every way of loading weights shares."""
from __future__ import annotations

from typing import Any

from ssld_zoo.errors import InvalidWeightsError


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
