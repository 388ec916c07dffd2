"""CIFAR-10 from the data folder, kept as packed JPEG bytes and decoded on demand (numpy + Pillow, no torch).

    from ssld_zoo.data.cifar import load_cifar10
    pack = load_cifar10("train")            # folder: data_root= (e.g. from --data DIR), else $SSLD_ZOO_DATA
    len(pack)                               # 50000 (test: 10000)
    pack.labels                             # np.ndarray int64, class index per image (order of CLASSES)
    pack.image(i)                           # PIL.Image, RGB, 32x32, decoded now
    pack.decode_all(idx=None)               # np.ndarray uint8 (n, 32, 32, 3), all images or those at `idx`
    pack.indices("per_class:400")           # int64 indices: the first 400 images of every class, in file order
    pack.indices("except_per_class:400")    # the rest; indices(None) is every image

`per_class(n)` / `except_per_class(n)` are the same subsets as methods. Missing or incomplete files, a bad split and a
bad subset raise `ssld_zoo.errors.DataError` (one line: what is wrong, what to download, where to put it).

Files: `<data>/cifar10/cifar10_jpegbytes_{train,test}.npz` with `data` (the JPEG files concatenated, uint8),
`offsets` (int64, n + 1) and `y` (uint8 labels), read with `allow_pickle=False`; both splits are sorted by class, in
the official CIFAR-10 order within a class. The pixels are CIFAR-10 re-encoded as JPEG q75 (YoongiKim), not the
original lossless images: describe results on them that way.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ssld_zoo.errors import DataError
from ssld_zoo.data.subsets import parse_subset, subset_indices
from ssld_zoo.paths import SHARED_DATA, Missing, find_data_file
from ssld_zoo.reading import open_regular

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (32, 32, 3)


class CifarPack:
    """One CIFAR-10 split: JPEG bytes in one buffer, decoded per image on first use and kept decoded (3 KB each;
    training reads every image once per epoch, and decoding costs more than the augmentation)."""

    def __init__(self, split: str, path: Path, data: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> None:
        self.split = split
        self.path = path
        self.labels = labels
        self._data = data
        self._offsets = offsets
        self._pixels: np.ndarray | None = None  # allocated on first use; memory is touched only where decoded
        self._decoded = np.zeros(len(labels), dtype=bool)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"CifarPack(split={self.split!r}, n={len(self)}, path='{self.path}')"

    def image(self, i: int) -> Image.Image:
        """Image `i`, decoded to RGB."""
        i = self._index(i)
        if self._decoded[i]:
            return Image.fromarray(self._pixels[i])  # type: ignore[index]
        with Image.open(io.BytesIO(self.jpeg(i))) as im:
            rgb = im.convert("RGB")
        if rgb.size == IMAGE_SHAPE[1::-1]:
            if self._pixels is None:
                self._pixels = np.empty((len(self), *IMAGE_SHAPE), dtype=np.uint8)
            self._pixels[i] = np.asarray(rgb)
            self._decoded[i] = True
        return rgb

    def jpeg(self, i: int) -> bytes:
        """Image `i` as its stored JPEG bytes."""
        i = self._index(i)
        return self._data[self._offsets[i]:self._offsets[i + 1]].tobytes()

    def _index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image index {i} is out of range for the {n} images of CIFAR-10 {self.split}")
        return i % n

    def decode_all(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Images as uint8 NHWC RGB: all of them, or those at `idx` in that order (~1.3 s per 10k on one core)."""
        idx = np.arange(len(self)) if idx is None else np.asarray(idx)
        out = np.empty((len(idx), *IMAGE_SHAPE), dtype=np.uint8)
        for k, i in enumerate(idx.tolist()):
            out[k] = np.asarray(self.image(i))
        return out

    def per_class(self, n: int) -> np.ndarray:
        """Indices of the first `n` images of every class, in file order."""
        return self.indices(f"per_class:{n}")

    def except_per_class(self, n: int) -> np.ndarray:
        """Indices of every image not in `per_class(n)`, in file order."""
        return self.indices(f"except_per_class:{n}")

    def indices(self, subset: str | None) -> np.ndarray:
        """Indices of `subset` (None: every image; else a `ssld_zoo.data.subsets` name), in file order."""
        if subset is None:
            return np.arange(len(self))
        parsed, where = parse_subset(subset), f"CIFAR-10 {self.split}"
        per_class = int(np.bincount(self.labels, minlength=len(CLASSES)).min())
        if parsed is not None and parsed.stop > per_class:
            raise DataError(f"{where}: subset {subset} reaches image {parsed.stop} of a class, but every class has "
                            f"{per_class} images.")
        return subset_indices(self.labels, subset, where)


def load_cifar10(split: str, data_root: str | os.PathLike | None = None) -> CifarPack:
    """CIFAR-10 `split` ("train" or "test") from `data_root`, else from `$SSLD_ZOO_DATA`."""
    if split not in SPLIT_SIZES:
        raise DataError(f"CIFAR-10 split '{split}' does not exist; use one of {', '.join(SPLIT_SIZES)}.")
    name = f"cifar10/cifar10_jpegbytes_{split}.npz"
    path = find_data_file(name, data_root)
    if isinstance(path, Missing):
        raise DataError(f"CIFAR-10 {split} images not found: {path.reason}. Copy {PurePosixPath(name).name} from "
                        f"{SHARED_DATA} (cifar10/, see its README.md) into {path.put_in}.")
    try:
        with open_regular(path, what="CIFAR-10 pack", error=DataError) as f, np.load(f, allow_pickle=False) as z:
            data, offsets, labels = z["data"], z["offsets"], z["y"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(_incomplete(path, split, f"cannot read it: {e}"), path=str(path)) from e
    problem = _layout_problem(data, offsets, labels, SPLIT_SIZES[split])
    if problem is not None:
        raise DataError(_incomplete(path, split, problem))
    return CifarPack(split, path, data, offsets, labels.astype(np.int64))


def _incomplete(path: Path, split: str, problem: str) -> str:
    return (f"{path} is not a complete CIFAR-10 {split} pack ({problem}). Copy it again from {SHARED_DATA} "
            "(cifar10/, see its README.md).")


def _layout_problem(data: np.ndarray, offsets: np.ndarray, labels: np.ndarray, n: int) -> str | None:
    if data.dtype != np.uint8 or data.ndim != 1:
        return f"'data' must be 1-D uint8, not {data.ndim}-D {data.dtype}"
    if labels.shape != (n,) or offsets.shape != (n + 1,):
        return f"expected {n} labels and {n + 1} offsets, found {labels.size} and {offsets.size}"
    if offsets[0] != 0 or offsets[-1] != data.size or (np.diff(offsets) <= 0).any():
        return "'offsets' must rise from 0 to the size of 'data'"
    if labels.max() >= len(CLASSES):
        return f"labels must be below {len(CLASSES)}"
    return None
