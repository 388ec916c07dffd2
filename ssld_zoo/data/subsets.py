"""Per-class subsets of a labelled image source, named the same way by recipes, `ssld-zoo mine` and `CifarPack`:

    per_class:N          the first N images of every class, in source order
    per_class:A:B        images A to B-1 of every class
    except_per_class:N   every image not in per_class:N (unlabelled images included)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ssld_zoo.errors import DataError

SUBSET_FORMS = "per_class:N, per_class:A:B or except_per_class:N"
_SUBSET = re.compile(r"^(?:per_class:(\d+)(?::(\d+))?|except_per_class:(\d+))$")


@dataclass(frozen=True)
class Subset:
    """Images `start` to `stop - 1` of every class (`per_class`), or every other image (`except_per_class`)."""

    per_class: bool
    start: int
    stop: int


def parse_subset(text: str) -> Subset | None:
    """The subset `text` names, or None when it is not one of `SUBSET_FORMS`."""
    match = _SUBSET.match(text)
    if match is None:
        return None
    first, second, excluded = match.groups()
    if excluded is not None:
        return Subset(False, 0, int(excluded))
    return Subset(True, 0, int(first)) if second is None else Subset(True, int(first), int(second))


def subset_indices(labels: np.ndarray, subset: str, where: str) -> np.ndarray:
    """Sorted indices into `labels` (-1 for unlabelled) of `subset`; `where` names the source in errors."""
    parsed = parse_subset(subset)
    if parsed is None:
        raise DataError(f"{where}: subset '{subset}' must be {SUBSET_FORMS}.")
    if (labels < 0).all():
        raise DataError(f"{where}: subset {subset} needs labelled images, and this source has none.")
    chosen = np.zeros(len(labels), bool)
    for label in np.unique(labels[labels >= 0]):
        chosen[np.flatnonzero(labels == label)[parsed.start:parsed.stop]] = True
    return np.flatnonzero(chosen if parsed.per_class else ~chosen)
