"""The pool and evaluation images (`--pool`, `--exclude`), streamed in order: each image is decoded once, for both the
teacher's pixels and the perceptual hash.

The dataset here is mining's own because it gives what training's `ImageDataset` does not: the hash of the same
decode, and which images failed (their list entries go into the summary). The batches are training's `EvalBatches`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssld_zoo.errors import MineError
from ssld_zoo.tools.mining.hashing import phash

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ssld_zoo.train.data import Images, Key, Loader
    from ssld_zoo.train.recipe import DataSource


def _source(spec: str, subset: str | None, option: str) -> "DataSource":
    """The data source `spec` names; a path becomes absolute, so the images it holds do not depend on the folder a
    resumed run starts in."""
    from ssld_zoo.train.recipe import SOURCE_KINDS, DataSource
    kind = spec.split(":", 1)[0]
    if kind in SOURCE_KINDS and ":" in spec:
        if kind == "cifar10" and spec not in ("cifar10:train", "cifar10:test"):
            raise MineError(f"{option} '{spec}' must be cifar10:train or cifar10:test.")
        if kind == "shards":
            raise MineError(f"{option} '{spec}': a mined list names image files or CIFAR-10 images, so mine a folder, "
                            "a list file or cifar10:train / cifar10:test, not shards.")
        return DataSource(spec, subset=subset)
    path = Path(spec).expanduser()
    if path.is_dir():
        return DataSource(f"folder:{os.path.abspath(path)}", subset=subset)
    if path.is_file():
        return DataSource(f"list:{os.path.abspath(path)}", subset=subset)
    raise MineError(f"{option} '{spec}' is neither a folder of images, a list file, nor cifar10:train / cifar10:test.")


def open_images(spec: str, subset: str | None, data_root: str | os.PathLike | None, option: str) -> "Images":
    """The images of `--pool` / `--exclude`: a folder (recursive), a list file, or a CIFAR-10 pack, with `subset`."""
    from ssld_zoo.data.subsets import SUBSET_FORMS, parse_subset
    from ssld_zoo.train.data import open_source
    if subset is not None and parse_subset(subset) is None:
        raise MineError(f"{option}-subset '{subset}' must be {SUBSET_FORMS}.")
    return open_source(_source(spec, subset, option), data_root)


class _Decoded:
    """A map-style dataset over `EvalBatches`' keys: image i as (i, teacher input uint8 CHW or None, phash or 0,
    decoded?)."""

    def __init__(self, images: "Images", transform: Any, with_hash: bool) -> None:
        self.images, self.transform, self.with_hash = images, transform, with_hash

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: "Key") -> tuple[int, Any, int, bool]:
        from ssld_zoo.train.data import DECODE_ERRORS
        i = key[0]
        try:
            im = self.images.image(i)
        except DECODE_ERRORS:
            return i, None, 0, False
        return i, self.transform.eval_view(im) if self.transform else None, phash(im) if self.with_hash else 0, True


@dataclass
class DecodedBatch:
    indices: "np.ndarray"  # decoded images
    images: "torch.Tensor | None"  # uint8 (n, 3, s, s) when the teacher runs
    hashes: "np.ndarray"  # uint64 (n,)
    failed: list[int]  # indices that could not be decoded


def _collate(items: list[tuple[int, Any, int, bool]]) -> DecodedBatch:
    import numpy as np
    import torch
    good = [item for item in items if item[3]]
    images = torch.stack([im for _, im, _, _ in good]) if good and good[0][1] is not None else None
    return DecodedBatch(np.array([i for i, *_ in good], dtype=np.int64), images,
                        np.array([h for _, _, h, _ in good], dtype=np.uint64), [i for i, *_, ok in items if not ok])


def batches(images: "Images", start: int, batch_size: int, transform: Any, with_hash: bool, workers: int,
            pin_memory: bool) -> "Loader":
    """`DecodedBatch`es of images `start..len(images)` in order: teacher pixels when `transform` is given, hashes
    when `with_hash`."""
    from ssld_zoo.train.data import EvalBatches, loader
    return loader(_Decoded(images, transform, with_hash), EvalBatches(len(images), batch_size, start=start),
                  workers=workers, pin_memory=pin_memory, collate=_collate)
