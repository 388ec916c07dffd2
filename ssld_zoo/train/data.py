"""Training and evaluation images: sources, seeded augmentation, sharded resumable batches.

A dataset yields `(index, uint8 CHW image or None, label)`; the label is -1 when the image has none or the recipe hides
it, and the image is None when the file cannot be decoded (the batch drops it and counts it as skipped). Pixels stay
in [0, 255]: each model normalises its own input (`networks.Normalized`).

Every sample's augmentation is seeded from (seed, stage, epoch, index), and every epoch's order from
(seed, stage, epoch), so a batch holds the same pixels whatever the worker count, rank count or resume point.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import re
import struct
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ssld_zoo.errors import DataError
from ssld_zoo.reading import MAX_IMAGE_BYTES, MAX_LIST_BYTES, open_regular, read_bytes, read_text, shorten, walk_files
from ssld_zoo.data.cifar import SPLIT_SIZES
from ssld_zoo.data.pixels import (RESAMPLE, ImageTransform, decode, eval_pixels, open_image, resize_box, rgb, to_image,
                                  to_tensor)
from ssld_zoo.data.subsets import subset_indices
from ssld_zoo.train.losses import IGNORE_LABEL
from ssld_zoo.train.recipe import Augment, DataSource, expand_env

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)
_CIFAR_ENTRY = re.compile(r"^cifar10:(train|test)/(\d+)$")
SeedWords = tuple[int, int, int]  # (seed, stage, epoch)
Key = tuple[int, "SeedWords | None"]  # (sample index, seed words; None for evaluation)


class Images(ABC):
    """An indexed set of images with an int64 label per image (-1: none)."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def image(self, i: int) -> Image.Image:
        """Image `i` decoded to RGB; raises an OSError-like exception when it cannot be read."""

    @abstractmethod
    def encoded(self, i: int) -> bytes:
        """Image `i` as stored (JPEG, PNG, ... bytes): what transforms take (`pixels.ImageTransform`)."""

    @abstractmethod
    def entry(self, i: int) -> str:
        """Image `i` as a list file names it: its absolute path, or `cifar10:SPLIT/INDEX` for a CIFAR-10 pack image."""

    def fingerprint(self) -> str:
        """sha256 of which images these are, in order: the soft-label cache and `mine --resume` check that a source
        still holds what it held. Cache manifests and mining states record it, so changing what it hashes needs a new
        version of both formats."""
        digest = hashlib.sha256()
        for chunk in self._identity():
            digest.update(chunk)
        return digest.hexdigest()

    @abstractmethod
    def _identity(self) -> Iterator[bytes]:
        """What `fingerprint` hashes."""


class Files(Images):
    """Image files on disk."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int]) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)

    def image(self, i: int) -> Image.Image:
        return _image_file(self.paths[i])

    def encoded(self, i: int) -> bytes:
        return _image_bytes(self.paths[i])

    def entry(self, i: int) -> str:
        return os.path.abspath(self.paths[i])

    def _identity(self) -> Iterator[bytes]:
        return (f"{path}\n".encode() for path in self.paths)


class Cifar(Images):
    """A CIFAR-10 split from `ssld_zoo.data.cifar` (packed JPEG bytes, decoded on demand)."""

    def __init__(self, split: str, data_root: str | os.PathLike | None) -> None:
        from ssld_zoo.data.cifar import load_cifar10
        self.pack = load_cifar10(split, data_root)
        self.labels = self.pack.labels

    def image(self, i: int) -> Image.Image:
        return self.pack.image(i)

    def encoded(self, i: int) -> bytes:
        return self.pack.jpeg(i)

    def entry(self, i: int) -> str:
        return f"cifar10:{self.pack.split}/{i}"

    def _identity(self) -> Iterator[bytes]:
        yield f"cifar10:{self.pack.split}:{len(self.pack)}".encode()


class Listed(Images):
    """The images of a list file: files on disk, or CIFAR-10 pack images written `cifar10:SPLIT/INDEX`."""

    def __init__(self, entries: Sequence[str | tuple[str, int]], labels: Sequence[int],
                 data_root: str | os.PathLike | None) -> None:
        self.entries, self.data_root = list(entries), data_root
        self.labels = np.asarray(labels, dtype=np.int64)
        self._packs: dict[str, Any] = {}

    def image(self, i: int) -> Image.Image:
        entry = self.entries[i]
        if isinstance(entry, str):
            return _image_file(entry)
        split, index = entry
        return self._pack(split).image(index)

    def encoded(self, i: int) -> bytes:
        entry = self.entries[i]
        if isinstance(entry, str):
            return _image_bytes(entry)
        split, index = entry
        return self._pack(split).jpeg(index)

    def entry(self, i: int) -> str:
        item = self.entries[i]
        return os.path.abspath(item) if isinstance(item, str) else f"cifar10:{item[0]}/{item[1]}"

    def _identity(self) -> Iterator[bytes]:
        return (f"{item}\n".encode() for item in self.entries)  # a pack image as its tuple: ('train', 7)

    def _pack(self, split: str) -> Any:
        if split not in self._packs:
            from ssld_zoo.data.cifar import load_cifar10
            self._packs[split] = load_cifar10(split, self.data_root)
        return self._packs[split]


class Selection(Images):
    """Some images of `base` (by index), with the labels kept or hidden."""

    def __init__(self, base: Images, indices: np.ndarray, hide_labels: bool) -> None:
        self.base, self.indices = base, indices
        self.labels = np.full(len(indices), IGNORE_LABEL, np.int64) if hide_labels else base.labels[indices]

    def image(self, i: int) -> Image.Image:
        return self.base.image(int(self.indices[i]))

    def encoded(self, i: int) -> bytes:
        return self.base.encoded(int(self.indices[i]))

    def entry(self, i: int) -> str:
        return self.base.entry(int(self.indices[i]))

    def _identity(self) -> Iterator[bytes]:
        yield self.indices.astype("<i8").tobytes()
        yield from self.base._identity()


class Shards(Images):
    """The samples of WebDataset tar shards (`ssld_zoo.data.shards`; URLs fetched once into the conversion cache),
    read in place by offset."""

    def __init__(self, location: str) -> None:
        from ssld_zoo.data.shards import local_shard, members, shard_list
        from ssld_zoo.weights.resolve import conversion_cache_root
        self.location = location
        self.paths = [os.fspath(local_shard(s, conversion_cache_root() / "shards")) for s in shard_list(location)]
        rows = [(n, m.offset, m.size, m.label) for n, path in enumerate(self.paths) for m in members(Path(path))]
        table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        self.shard, self.offsets, self.sizes, self.labels = table.T.copy()
        self._fds: dict[int, int] = {}

    def __getstate__(self) -> dict[str, Any]:  # each DataLoader worker opens the shards itself
        return {**self.__dict__, "_fds": {}}

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)

    def encoded(self, i: int) -> bytes:
        n = int(self.shard[i])
        if n not in self._fds:
            self._fds[n] = os.open(self.paths[n], os.O_RDONLY)
        return os.pread(self._fds[n], int(self.sizes[i]), int(self.offsets[i]))

    def image(self, i: int) -> Image.Image:
        return rgb(open_image(self.encoded(i)))

    def entry(self, i: int) -> str:
        raise DataError(f"Sample {i} of shards '{self.location}' has no list-file entry: a list file names image "
                        "files and CIFAR-10 pack images only.")

    def _identity(self) -> Iterator[bytes]:
        yield f"shards:{self.location}\n".encode()
        yield np.stack([self.shard, self.offsets, self.sizes]).astype("<i8").tobytes()


def _image_file(path: str) -> Image.Image:
    """The image file at `path` decoded to RGB; anything but a regular file is refused at once (never waited on)."""
    with open_regular(path, what="image", error=DataError) as f, Image.open(f) as im:
        return im.convert("RGB")


def _image_bytes(path: str) -> bytes:
    return read_bytes(path, what="image", max_bytes=MAX_IMAGE_BYTES, error=DataError)


def image_files(folder: Path, visited: set[tuple[int, int]] | None = None) -> list[Path]:
    """Every image file under `folder`, sorted. Each sub-folder is read once however many links lead to it (a link
    back up is skipped, not followed), and one that cannot be read is an error, not a silent gap in the data.
    `visited` is shared by the walks of one data source (`ssld_zoo.reading.walk_files`)."""
    return list(walk_files(folder, suffixes=IMAGE_SUFFIXES, visited=visited, what="data folder", error=DataError))


def class_images(root: Path, classes: Sequence[Path]) -> list[list[Path]]:
    """The image files of each class folder of `root`. `root` and every class folder count as walked from the start,
    so a link back to `root` or into another class is skipped: no image is read twice or under another class."""
    def key(folder: Path) -> tuple[int, int]:
        info = folder.stat()
        return info.st_dev, info.st_ino

    keys = [key(folder) for folder in classes]
    visited, started = {key(root), *keys}, set()
    found = []
    for folder, own in zip(classes, keys):
        if own not in started:  # a second name for a class folder already walked stays skipped
            visited.discard(own)
            started.add(own)
        found.append(image_files(folder, visited))
    return found


def _image_folder(root: Path) -> Files:
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, files in enumerate(class_images(root, classes)):
        paths += files
        labels += [label] * len(files)
    return Files(paths, labels)


def _list_file(path: Path, data_root: str | os.PathLike | None) -> Listed:
    entries: list[str | tuple[str, int]] = []
    labels = []
    text = read_text(path, what="list file (one image path per line, optionally followed by a label)",
                     max_bytes=MAX_LIST_BYTES, error=DataError)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        label = IGNORE_LABEL
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            if len(parts[1]) > 18:
                raise DataError(f"{path}:{number}: label {shorten(parts[1])} is too large for a class index.")
            line, label = parts[0], int(parts[1])
            if label < 0:
                raise DataError(f"{path}:{number}: label {label} is negative; leave it out for an unlabeled image.")
        packed = _CIFAR_ENTRY.match(line)
        if packed:
            if len(packed[2]) > 9 or int(packed[2]) >= SPLIT_SIZES[packed[1]]:
                raise DataError(f"{path}:{number}: {shorten(line)} is out of range; CIFAR-10 {packed[1]} has "
                                f"{SPLIT_SIZES[packed[1]]} images.")
            entries.append((packed[1], int(packed[2])))
        else:
            entries.append(os.fspath(path.parent / Path(line).expanduser()))
        labels.append(label)
    return Listed(entries, labels, data_root)


def open_source(source: DataSource, data_root: str | os.PathLike | None = None) -> Images:
    """The images of one recipe data source, with its subset applied and its labels hidden if `labels: false`."""
    kind, where = source.kind, source.source
    if kind == "cifar10":
        images: Images = Cifar(source.location, data_root)
    elif kind == "shards":
        images = Shards(expand_env(source.location))
    else:
        path = Path(expand_env(source.location)).expanduser()
        if not path.exists():
            raise DataError(f"Data source '{where}': {path} does not exist.")
        if kind == "list":
            if not path.is_file():
                raise DataError(f"Data source '{where}': {path} is not a text file with one image path per line.")
            images = _list_file(path, data_root)
        elif not path.is_dir():
            raise DataError(f"Data source '{where}': {path} is not a folder.")
        elif kind == "imagefolder":
            images = _image_folder(path)
        else:
            files = image_files(path)
            images = Files(files, [IGNORE_LABEL] * len(files))
    indices = subset_indices(images.labels, source.subset, where) if source.subset else np.arange(len(images))
    if len(indices) == 0:
        raise DataError(f"Data source '{where}'" + (f" (subset {source.subset})" if source.subset else "")
                        + f" has no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    if len(indices) == len(images) and source.labels:
        return images
    return Selection(images, indices, hide_labels=not source.labels)


@contextmanager
def _seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's and numpy's global RNGs (timm's RandAugment draws from them) and restore them afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _random_resized_box(width: int, height: int, scale: tuple[float, float],
                        rng: random.Random) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (x, y, w, h) (ratio 3/4..4/3) with the draws taken from `rng`."""
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= width and 0 < ch <= height:
            return rng.randint(0, width - cw), rng.randint(0, height - ch), cw, ch
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


@dataclass(frozen=True)
class View:
    """The random choices of one augmented view, enough to redraw its pixels from the image: the crop `box`
    (x, y, w, h in source pixels, resized to the input size; None: resize + center crop), the pad-crop offset, the
    horizontal flip, and the seed of RandAugment's draws (None without RandAugment)."""

    box: tuple[int, int, int, int] | None = None
    pad_offset: tuple[int, int] = (0, 0)
    flip: bool = False
    augment_seed: int | None = None

    FIELDS = 8  # length of `as_row`

    def as_row(self) -> list[int]:
        """The view as 8 integers (-1 for None), for storing in a cache."""
        box = self.box or (-1, -1, -1, -1)
        return [*box, *self.pad_offset, int(self.flip), -1 if self.augment_seed is None else self.augment_seed]

    @classmethod
    def from_row(cls, row: Sequence[int]) -> "View":
        x, y, w, h, px, py, flip, seed = (int(v) for v in row)
        return cls(None if w < 0 else (x, y, w, h), (px, py), bool(flip), None if seed < 0 else seed)


class Transform:
    """The recipe's train augmentation (when `train`) or its eval preprocessing: encoded image bytes -> uint8 CHW
    tensor (`pixels.ImageTransform`; the pixel paths are `ssld_zoo.data.pixels`'s).

    A train view is drawn from a seed (`draw`) and then applied (`apply`), so a view can be stored and replayed."""

    def __init__(self, size: int, augment: Augment, *, train: bool, fill: tuple[int, int, int] = (128, 128, 128)):
        self.size, self.augment, self.train = size, augment, train
        self.rand_augment = None
        if train and augment.auto_augment:
            from timm.data.auto_augment import rand_augment_transform
            self.rand_augment = rand_augment_transform(
                augment.auto_augment, dict(translate_const=int(size * 0.45), img_mean=fill,
                                           interpolation=RESAMPLE[augment.interpolation]))

    def draw(self, width: int, height: int, seed: int) -> View:
        """The random choices of the train view seeded by `seed` for an image of `width` x `height`."""
        a, rng = self.augment, random.Random(seed)
        box = _random_resized_box(width, height, a.random_resized_crop, rng) if a.random_resized_crop else None
        pad = (rng.randint(0, 2 * a.pad_crop), rng.randint(0, 2 * a.pad_crop)) if a.pad_crop else (0, 0)
        flip = a.hflip and rng.random() < 0.5
        return View(box, pad, flip, rng.getrandbits(63) if self.rand_augment is not None else None)

    def apply(self, data: bytes, view: View) -> torch.Tensor:
        """The pixels of train view `view` of the encoded image `data`."""
        return self._apply(decode(data), view)

    def view(self, data: bytes, seed: int) -> tuple[View, torch.Tensor]:
        """The train view seeded by `seed` of the encoded image `data`, and its pixels."""
        pixels = decode(data)
        view = self.draw(pixels.shape[2], pixels.shape[1], seed)
        return view, self._apply(pixels, view)

    def _apply(self, pixels: torch.Tensor, view: View) -> torch.Tensor:
        if view.box is not None:
            out = resize_box(pixels, view.box, self.size, self.augment.interpolation)
        else:
            out = eval_pixels(to_image(pixels), self.size, 1.0, self.augment.interpolation)
        if self.augment.pad_crop:
            p, (x, y) = self.augment.pad_crop, view.pad_offset
            out = torch.nn.functional.pad(out, (p, p, p, p))[:, y:y + self.size, x:x + self.size]
        if view.flip:
            out = out.flip(-1)
        if self.rand_augment is not None and view.augment_seed is not None:
            with _seeded_global_rngs(view.augment_seed):
                out = to_tensor(self.rand_augment(to_image(out)))
        return out.contiguous()

    def eval_view(self, im: Image.Image) -> torch.Tensor:
        """The eval pixels of an image already decoded to RGB (mining hashes the same decode)."""
        return eval_pixels(im, self.size, self.augment.eval_crop_pct, self.augment.interpolation)

    def __call__(self, data: bytes, seed: int | None) -> torch.Tensor:
        if not self.train:
            return self.eval_view(to_image(decode(data)))
        assert seed is not None, "a training transform draws its view from a seed"
        return self.view(data, seed)[1]


def epoch_order(words: SeedWords, n: int) -> np.ndarray:
    """The order of `n` images in epoch `words` = (seed, stage, epoch)."""
    return np.random.default_rng(list(words)).permutation(n)


def sample_seed(words: SeedWords, index: int) -> int:
    """The augmentation seed of sample `index` in epoch `words` = (seed, stage, epoch)."""
    return int(np.random.SeedSequence([*words, index]).generate_state(2, np.uint64)[0])


class ImageDataset(torch.utils.data.Dataset):
    """Several sources as one indexed dataset; `dataset[(index, seed_words)]` -> `(index, image or None, label)`."""

    def __init__(self, sources: Sequence[Images], transform: ImageTransform) -> None:
        self.sources, self.transform = list(sources), transform
        self.starts = np.cumsum([0] + [len(s) for s in self.sources])
        self.labels = np.concatenate([s.labels for s in self.sources])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(source number, index within that source) of dataset image `index`."""
        which = int(np.searchsorted(self.starts, index, side="right")) - 1
        return which, index - int(self.starts[which])

    def __getitem__(self, key: Key) -> tuple[int, torch.Tensor | None, int]:
        index, words = key
        which, local = self.locate(index)
        label = int(self.labels[index])
        try:
            return index, self.transform(self.sources[which].encoded(local),
                                         None if words is None else sample_seed(words, index)), label
        except DECODE_ERRORS:
            return index, None, label


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (n, 3, size, size)
    labels: torch.Tensor  # int64 (n,), -1 for none
    indices: torch.Tensor  # int64 (n,), dataset indices
    skipped: int  # images in this batch that could not be decoded
    log_probs: torch.Tensor | None = None  # cached soft labels: the teacher's top-k log-probabilities (n, k)
    classes: torch.Tensor | None = None  # int64 (n, k), their classes

    def pin_memory(self) -> "Batch":
        pin = [t.pin_memory() if t is not None else None for t in (self.log_probs, self.classes)]
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.indices.pin_memory(), self.skipped,
                     *pin)


class Collate:
    """Stacks the decoded samples of a batch (with their soft labels, when the dataset gives them) and counts the
    ones that could not be decoded."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, items: list[tuple[Any, ...]]) -> Batch:
        good = [item for item in items if item[1] is not None]
        images = (torch.stack([item[1] for item in good]) if good
                  else torch.empty((0, 3, self.size, self.size), dtype=torch.uint8))
        batch = Batch(images, torch.tensor([item[2] for item in good], dtype=torch.int64),
                      torch.tensor([item[0] for item in good], dtype=torch.int64), len(items) - len(good))
        if items and len(items[0]) == 5:
            batch.log_probs = (torch.from_numpy(np.stack([item[3] for item in good])) if good
                               else torch.empty((0, 0), dtype=torch.float16))
            batch.classes = (torch.from_numpy(np.stack([item[4] for item in good]).astype(np.int64)) if good
                             else torch.empty((0, 0), dtype=torch.int64))
        return batch


class TrainBatches:
    """One rank's batches of one epoch: a permutation seeded by (seed, stage, epoch), cut into `global_batch`-sized
    steps (the incomplete last one dropped), each rank taking every `world`-th sample of a step. Starting at
    `start_step` skips the consumed batches without loading them."""

    def __init__(self, n: int, global_batch: int, *, seed: int, stage: int, epoch: int, rank: int = 0,
                 world: int = 1, start_step: int = 0) -> None:
        self.n, self.global_batch, self.rank, self.world = n, global_batch, rank, world
        self.words: SeedWords = (seed, stage, epoch)
        self.start_step = start_step

    @staticmethod
    def steps_per_epoch(n: int, global_batch: int) -> int:
        return n // global_batch

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch(self.n, self.global_batch) - self.start_step)

    def __iter__(self) -> Iterator[list[Key]]:
        order = epoch_order(self.words, self.n)
        for step in range(self.start_step, self.steps_per_epoch(self.n, self.global_batch)):
            chunk = order[step * self.global_batch:(step + 1) * self.global_batch][self.rank::self.world]
            yield [(int(i), self.words) for i in chunk]


class EvalBatches:
    """This rank's share (every `world`-th image) of an evaluation set, in batches, unshuffled; from image `start` on
    (a pass picked up again), with no list of all indices held."""

    def __init__(self, n: int, batch: int, *, rank: int = 0, world: int = 1, start: int = 0) -> None:
        self.indices = range(start + rank, n, world)
        self.batch = batch

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch)

    def __iter__(self) -> Iterator[list[Key]]:
        for start in range(0, len(self.indices), self.batch):
            yield [(i, None) for i in self.indices[start:start + self.batch]]


class Loader:
    """Batches from a DataLoader that, before each one, raises again a Ctrl-C or SIGTERM that reached the command but
    was lost on its way up (`console.raise_if_interrupted`). Every data loop (training, evaluation, the soft-label
    cache, mining) reads through one, so a signal never leaves a loop running."""

    def __init__(self, data: torch.utils.data.DataLoader) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Any]:
        from ssld_zoo.console import raise_if_interrupted
        for batch in self.data:
            raise_if_interrupted()
            yield batch


def loader(dataset: Any, batches: Any, *, workers: int, pin_memory: bool = False,
           collate: Callable[[list[Any]], Any] | None = None) -> Loader:
    """The batches of `dataset` (map-style) that `batches` lists, decoded by `workers` processes and put together
    by `collate` (an `ImageDataset`'s `Collate` by default); its private generator keeps the global torch RNG
    untouched."""
    return Loader(torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                                              collate_fn=collate or Collate(dataset.transform.size),
                                              pin_memory=pin_memory, generator=torch.Generator()))
