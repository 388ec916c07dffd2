"""The soft-label cache format, and replaying it in training (`soft_labels: cache`). `cache.py` writes it.

A cache holds the teacher's `topk` largest log-probabilities (fp16) for `views` augmented views of every training
image, with each view's random choices (`data.View`: crop box, pad offset, flip, RandAugment seed), so a student
replays exactly the pixels the teacher labelled. Log-probabilities keep their relative precision where fp16
probabilities would underflow, or round a confident teacher's leftover mass away.

View `v` of image `i` of a source is drawn with the seed of sample `i` in epoch `v` of a one-stage online run
(`data.sample_seed((seed, 0, v), i)`), and the teacher sees view `v` in that epoch's batches (`data.epoch_order`).
So for a recipe with one training source, a cached run replays its first `views` epochs with the very pixels and
teacher batches (BatchNorm in train mode included) of the online run; the targets differ only by fp16 rounding.
Epoch `g` of a run (counted over its stages) uses view `g` while `g < views`, then a view drawn per image.

    DIR/manifest.json                          settings, teacher, data, and the sha256 of every file below
    DIR/shards/p00-v000-c0000.safetensors      source 0, view 0, chunk 0: `index`, `log_probs`, `classes`, `views`
    DIR/eval.safetensors                       the teacher's top-1 class of every evaluation image (`top1`)
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ssld_zoo.errors import CacheError
from ssld_zoo.files import file_sha256
from ssld_zoo.reading import open_regular, parse_json, read_json, shorten
from ssld_zoo.train.data import ImageDataset, Images, SeedWords, Transform, View, DECODE_ERRORS, sample_seed
from ssld_zoo.train.recipe import DataSource, Recipe

FORMAT = "ssld_zoo.soft_label_cache"
VERSION = 1
MANIFEST = "manifest.json"
EVAL_FILE = "eval.safetensors"
SHARD_IMAGES = 32768  # images per shard, rounded up to whole teacher batches
_DTYPES = {"F16": np.float16, "I16": np.int16, "I32": np.int32, "I64": np.int64}




# -- identities ---------------------------------------------------------------------------------------------------
def cache_sources(recipe: Recipe) -> list[DataSource]:
    """The recipe's distinct training sources (by source and subset; labels play no part), in order of first use."""
    seen: dict[tuple[str, str | None], DataSource] = {}
    for stage in recipe.stages:
        for source in stage.train:
            seen.setdefault((source.source, source.subset), source)
    return list(seen.values())


def source_key(source: DataSource) -> dict[str, Any]:
    return {"source": source.source, "subset": source.subset}


def weights_sha256(model: nn.Module) -> str:
    """sha256 over a model's state dict (names, dtypes, shapes, values), however it was loaded."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def teacher_identity(recipe: Recipe, teacher: nn.Module) -> dict[str, Any]:
    """The teacher as the manifest records it; `teacher` is the bare model."""
    assert recipe.teachers
    members = [{"model": t.model, "pretrained": t.pretrained, "model_args": t.model_args, "bn": t.bn}
               for t in recipe.teachers]
    identity = members[0] if len(members) == 1 else {"ensemble": members}
    return {**identity, "weights_sha256": weights_sha256(teacher)}


def transform_identity(recipe: Recipe) -> dict[str, Any]:
    """The settings that fix a view's pixels: input size, augmentation, and the decode/resize paths (`PIXELS`)."""
    from ssld_zoo.data.pixels import PIXELS
    return json.loads(json.dumps({"input_size": recipe.data.input_size, "augment": asdict(recipe.data.augment),
                                  "pixels": PIXELS}))


def shard_images(batch: int) -> int:
    return math.ceil(SHARD_IMAGES / batch) * batch


def shard_name(part: int, view: int, chunk: int) -> str:
    return f"shards/p{part:02d}-v{view:03d}-c{chunk:04d}.safetensors"


def view_words(seed: int, view: int) -> SeedWords:
    """The seed words of view `view`: those of epoch `view` of stage 0."""
    return seed, 0, view


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise CacheError(f"{folder} holds no soft-label cache ({MANIFEST} is missing); write one with "
                         "`ssld-zoo cache RECIPE.yaml --out DIR`.", path=str(path))
    manifest = read_json(path, what="soft-label cache manifest", error=CacheError)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CacheError(f"{path} is not a version-{VERSION} ssld_zoo soft-label cache.")
    if manifest.get("complete"):
        _check_manifest(manifest, path)
    return manifest


# -- reading ------------------------------------------------------------------------------------------------------
def _memmap(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only arrays over one memory map (no copy, one file handle); a file
    that is not one (whatever its recorded sha256) is one `CacheError`."""
    try:
        with open_regular(path, what="soft-label shard", error=CacheError) as f:
            raw = np.memmap(f, dtype=np.uint8, mode="r")
        size = int.from_bytes(raw[:8].tobytes(), "little")
        header = parse_json(raw[8:8 + size].tobytes(), where=f"{path} is not a soft-label shard: its header",
                            path=str(path), error=CacheError)
        base = 8 + size
        return {name: raw[base + info["data_offsets"][0]:base + info["data_offsets"][1]].view(
                    _DTYPES[info["dtype"]]).reshape(info["shape"])
                for name, info in header.items() if name != "__metadata__"}
    except CacheError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise CacheError(f"{path} is not a soft-label shard ({type(e).__name__}: {shorten(str(e))}); rebuild the "
                         "cache with `ssld-zoo cache RECIPE.yaml --out DIR`.", path=str(path)) from e


_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "views": int, "topk": int, "shard_images": int, "seed": int, "sources": list, "files": dict,
    "teacher": dict, "complete": bool}


def _check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """The manifest's fields have the types the reader relies on (a damaged or hand-edited one is one clear error)."""
    def refuse(what: str) -> None:
        raise CacheError(f"{path} is damaged: {what}. Rebuild the cache with `ssld-zoo cache RECIPE.yaml --out "
                         "DIR`.", path=str(path))

    for key, kind in _MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(key), kind) or (kind is int and isinstance(manifest[key], bool)):
            refuse(f"'{key}' is missing or not {getattr(kind, '__name__', kind)}")
    if manifest["views"] < 1 or manifest["shard_images"] < 1 or manifest["topk"] < 1:
        refuse("'views', 'topk' and 'shard_images' must be at least 1")
    if not all(isinstance(s, dict) and isinstance(s.get("images"), int) for s in manifest["sources"]):
        refuse("every entry of 'sources' needs a whole number of 'images'")
    if not all(isinstance(r, dict) and isinstance(r.get("sha256"), str) for r in manifest["files"].values()):
        refuse("every entry of 'files' needs its 'sha256'")


class SoftLabels:
    """An opened cache: `lookup(part, view, index)` -> (View, top-k log-probabilities, classes)."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest
        self.views, self.topk = manifest["views"], manifest["topk"]
        self._positions: dict[tuple[int, int], np.ndarray] = {}
        self._shards: dict[str, dict[str, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers map the shards themselves
        return {**self.__dict__, "_shards": {}, "_positions": {}}

    def part_of(self, source: DataSource) -> int:
        key = source_key(source)
        for part, recorded in enumerate(self.manifest["sources"]):
            if {k: recorded[k] for k in key} == key:
                return part
        raise CacheError(f"The soft-label cache {self.folder} has no soft labels for training source "
                         f"{source.source}" + (f" (subset {source.subset})" if source.subset else "")
                         + "; write a cache for this recipe with `ssld-zoo cache`.")

    def lookup(self, part: int, view: int, index: int) -> tuple[View, np.ndarray, np.ndarray]:
        position = self._position(part, view)[index]
        per_shard = self.manifest["shard_images"]
        name = shard_name(part, view, int(position) // per_shard)
        if name not in self._shards:
            self._shards[name] = _memmap(self.folder / name)
        shard, row = self._shards[name], int(position) % per_shard
        if int(shard["index"][row]) != index:
            raise CacheError(f"{self.folder / name} row {row} holds image {int(shard['index'][row])}, not {index}; "
                             "the cache is damaged. Rebuild it with `ssld-zoo cache`.")
        return View.from_row(shard["views"][row]), np.array(shard["log_probs"][row]), np.array(shard["classes"][row])

    def _position(self, part: int, view: int) -> np.ndarray:
        """Where each image of `part` sits in view `view`'s order (the order its shards were written in)."""
        if (part, view) not in self._positions:
            from ssld_zoo.train.data import epoch_order
            n = self.manifest["sources"][part]["images"]
            order = epoch_order(view_words(self.manifest["seed"], view), n)
            positions = np.empty(n, np.int64)
            positions[order] = np.arange(n)
            self._positions[(part, view)] = positions
        return self._positions[(part, view)]

    def eval_predictions(self, source: DataSource | None) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """The teacher's top-1 class per evaluation image and its top-1/top-5, when the cache has this eval set."""
        record = self.manifest["files"].get(EVAL_FILE)
        if source is None or record is None or self.manifest.get("eval") != source_key(source):
            return None
        predictions = torch.from_numpy(np.array(_memmap(self.folder / EVAL_FILE)["top1"]))
        return predictions, {"top1": record["top1"], "top5": record["top5"], "images": record["labelled"],
                             "skipped": record["skipped"]}


def open_cache(recipe: Recipe, teacher: nn.Module, data_root: Any = None,
               folder: str | Path | None = None) -> SoftLabels:
    """The recipe's cache (`cache.dir`, or `folder`) after checking every file's sha256 and that it was written for
    this teacher (`teacher`: the bare, loaded model), transform and data."""
    from ssld_zoo.train.data import open_source
    folder = Path(folder or recipe.cache.dir or "")
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
        raise CacheError(f"The soft-label cache {folder} is unfinished; run `ssld-zoo cache` again with the same "
                         "recipe and --out to complete it.")
    _check_files(folder, manifest)
    recorded, wanted = manifest["teacher"], teacher_identity(recipe, teacher)
    if recorded != wanted:
        raise CacheError(f"The soft-label cache {folder} was made with teacher {_describe(recorded)}, but this "
                         f"recipe's teacher is {_describe(wanted)}. Write a cache for this teacher: `ssld-zoo cache "
                         "RECIPE.yaml --out NEW_DIR`.")
    if manifest["transform"] != transform_identity(recipe):
        raise CacheError(f"The soft-label cache {folder} was made with another transform ({manifest['transform']}) "
                         f"than this recipe's ({transform_identity(recipe)}); the stored views would not be the "
                         "recipe's. Write a new cache with `ssld-zoo cache`.")
    labels = SoftLabels(folder, manifest)
    for source in cache_sources(recipe):
        recorded_source = manifest["sources"][labels.part_of(source)]
        images = open_source(source, data_root)
        if (recorded_source["images"], recorded_source["fingerprint"]) != (len(images), images.fingerprint()):
            raise CacheError(f"Training source {source.source} now holds other images than when the soft-label "
                             f"cache {folder} was written ({len(images)} vs {recorded_source['images']} images, or "
                             "other files); rebuild the cache with `ssld-zoo cache`.")
    return labels


def _describe(teacher: dict[str, Any]) -> str:
    members = teacher.get("ensemble") or [teacher]
    names = " + ".join(f"{m['model']} (pretrained {m['pretrained']}, bn {m['bn']})" for m in members)
    return f"{names}, weights sha256 {teacher['weights_sha256'][:12]}…"


def _check_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Every shard the manifest lists must exist with its sha256, and every (source, view, chunk) must be listed."""
    files = manifest["files"]
    for part, source in enumerate(manifest["sources"]):
        for view in range(manifest["views"]):
            for chunk in range(math.ceil(source["images"] / manifest["shard_images"])):
                if shard_name(part, view, chunk) not in files:
                    raise CacheError(f"The soft-label cache {folder} lists no {shard_name(part, view, chunk)}; run "
                                     "`ssld-zoo cache` again with the same recipe and --out to complete it.")
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            raise CacheError(f"{path} is missing from the soft-label cache; run `ssld-zoo cache` again with the same "
                             "recipe and --out to rewrite it.")
        actual = file_sha256(path)
        if actual != record["sha256"]:
            raise CacheError(f"{path} is corrupt: sha256 {actual}, the manifest says {record['sha256']}. Run "
                             "`ssld-zoo cache` again with the same recipe and --out to rewrite it.")
        _memmap(path)  # and it is a shard: its header reads (a file with a matching sha256 may still be garbage)


class CachedDataset(ImageDataset):
    """Training images with the cached view and soft labels of each: `dataset[(index, (seed, stage, epoch))]` ->
    `(index, image or None, label, log_probs, classes)`."""

    def __init__(self, sources: Sequence[Images], parts: Sequence[int], transform: Transform, labels: SoftLabels,
                 first_epoch: int) -> None:
        super().__init__(sources, transform)
        self.parts, self.labels_cache, self.first_epoch = list(parts), labels, first_epoch
        self.replay = transform  # draws nothing: each view comes from the cache

    def view_of(self, words: SeedWords, index: int) -> int:
        """View `g` in the run's epoch `g` while `g < views`, then one drawn per image from the seed words."""
        epoch = self.first_epoch + words[2]
        return epoch if epoch < self.labels_cache.views else sample_seed(words, index) % self.labels_cache.views

    def __getitem__(self, key: Any) -> tuple[Any, ...]:
        index, words = key
        which, local = self.locate(index)
        view, log_probs, classes = self.labels_cache.lookup(self.parts[which], self.view_of(words, index), local)
        label = int(self.labels[index])
        try:
            return index, self.replay.apply(self.sources[which].encoded(local), view), label, log_probs, classes
        except DECODE_ERRORS:
            return index, None, label, log_probs, classes
