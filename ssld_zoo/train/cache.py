"""`ssld-zoo cache RECIPE.yaml [KEY=VALUE ...] [--out DIR]`: write a soft-label cache: run a recipe's teacher once
over `cache.views` augmented views of every training image and store its top-k soft labels (format: `soft_labels.py`).
(Not the Hub cache nor the conversion cache of downloaded and converted weights: docs/architecture.md.)

Writing resumes: an interrupted run, started again with the same recipe and folder, keeps every finished shard (its
sha256 checked) and writes the rest. `--verify DIR` checks a finished cache against the recipe without writing.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from ssld_zoo.errors import CacheError, SsldZooError
from ssld_zoo.reporting import progress_bars
from ssld_zoo.train.resume import setting_changes

_logger = logging.getLogger(__name__)


def write_cache(recipe: Any, out: str | os.PathLike | None = None, *, data_root: str | os.PathLike | None = None,
                device: str | None = None, progress: bool | None = None) -> Path:
    """Write the soft-label cache of `recipe` (a `Recipe`) to `out` (default: its `cache.dir`), completing an
    unfinished one there; returns the folder. One writer at a time owns the folder (`files.run_lock`)."""
    from ssld_zoo.files import run_lock
    from ssld_zoo.train import soft_labels as fmt
    if recipe.teacher is None:
        raise fmt.CacheError(f"Recipe '{recipe.name}' has no teacher; a soft-label cache needs one.")
    if out is None and recipe.cache.dir is None:
        raise fmt.CacheError(f"Recipe '{recipe.name}' sets no cache.dir; pass --out DIR.")
    folder = Path(out if out is not None else recipe.cache.dir)
    with run_lock(folder):
        return _fill(recipe, folder, data_root, device, progress)


def _fill(recipe: Any, folder: Path, data_root: str | os.PathLike | None, device: str | None,
          progress: bool | None) -> Path:
    """`write_cache`'s work, in a folder it owns."""
    from ssld_zoo.files import write_text_atomic
    from ssld_zoo.train import soft_labels as fmt
    from ssld_zoo.train.data import Transform, epoch_order, open_source
    from ssld_zoo.train.distributed import pick_device
    from ssld_zoo.train.networks import build_teacher, normalized
    teacher = build_teacher(recipe.teachers, data_root)
    sources = fmt.cache_sources(recipe)
    images = [open_source(s, data_root) for s in sources]
    batch = recipe.cache.batch_size or recipe.batch_size
    settings = {
        "format": fmt.FORMAT, "version": fmt.VERSION, "teacher": fmt.teacher_identity(recipe, teacher),
        "transform": fmt.transform_identity(recipe), "seed": recipe.runtime.seed, "views": recipe.cache.views,
        "topk": min(recipe.cache.topk, teacher.num_classes), "num_classes": teacher.num_classes,
        "batch_size": batch, "shard_images": fmt.shard_images(batch), "amp": recipe.runtime.amp,
        "sources": [{**fmt.source_key(s), "images": len(im), "fingerprint": im.fingerprint()}
                    for s, im in zip(sources, images)],
        "eval": None if recipe.data.eval is None else fmt.source_key(recipe.data.eval)}
    wrapped = normalized(teacher)
    settings["fill"] = [round(255 * m) for m in wrapped.mean.flatten().tolist()]  # RandAugment's fill colour
    manifest = _start(folder, settings)
    dev = pick_device(device, error=CacheError)
    labeler = _Labeler(recipe, wrapped.to(dev), dev)
    writer = _ShardWriter(folder, manifest)
    show = progress_bars(_logger, progress)
    transform = Transform(recipe.data.input_size, recipe.data.augment, train=True, fill=tuple(settings["fill"]))
    for part, im in enumerate(images):
        for view in range(manifest["views"]):
            words = fmt.view_words(manifest["seed"], view)
            order = epoch_order(words, len(im))
            for chunk in range(math.ceil(len(im) / manifest["shard_images"])):
                name = fmt.shard_name(part, view, chunk)
                if writer.finished(name):
                    continue
                indices = order[chunk * manifest["shard_images"]:(chunk + 1) * manifest["shard_images"]]
                started = time.perf_counter()
                writer.save(name, labeler.label_views(im, transform, words, indices,
                                                      f"source {part + 1}/{len(images)} view {view + 1}/"
                                                      f"{manifest['views']} chunk {chunk + 1}", show))
                rate = len(indices) / (time.perf_counter() - started)
                _logger.info("wrote %s: %d views, %.0f img/s", folder / name, len(indices), rate)
    if recipe.data.eval is not None and not writer.finished(fmt.EVAL_FILE):
        eval_set = open_source(recipe.data.eval, data_root)
        eval_transform = Transform(recipe.data.input_size, recipe.data.augment, train=False)
        tensors, summary = labeler.label_eval(eval_set, eval_transform, show)
        writer.save(fmt.EVAL_FILE, tensors, **summary)
    manifest["complete"] = True
    write_text_atomic(folder / fmt.MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return folder


def _start(folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """A new manifest, or the unfinished one in `folder` when it was started with the same settings."""
    from ssld_zoo.train.soft_labels import MANIFEST, read_manifest
    if not (folder / MANIFEST).exists():
        folder.mkdir(parents=True, exist_ok=True)
        return {**settings, "complete": False, "files": {}}
    old = read_manifest(folder)
    changed = setting_changes(old, settings, may_change=("complete", "files"))
    if changed:
        raise CacheError(f"{folder} already holds a soft-label cache made with other settings (different "
                         f"{', '.join(changed)}); choose another --out, or delete that folder to rebuild it.")
    return old


class _ShardWriter:
    """Saves shards atomically and records each one's sha256 in the manifest right after."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest

    def finished(self, name: str) -> bool:
        from ssld_zoo.files import file_sha256
        record, path = self.manifest["files"].get(name), self.folder / name
        return record is not None and path.is_file() and file_sha256(path) == record["sha256"]

    def save(self, name: str, tensors: dict[str, Any], **summary: Any) -> None:
        from safetensors.numpy import save_file

        from ssld_zoo.files import atomic_path, file_sha256, write_text_atomic
        from ssld_zoo.train.soft_labels import MANIFEST
        path = self.folder / name
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))
        self.manifest["files"][name] = {"sha256": file_sha256(path), "images": int(len(tensors["index"])), **summary}
        write_text_atomic(self.folder / MANIFEST, json.dumps(self.manifest, indent=1) + "\n")


class _ViewsOf:
    """One view of each image of a source: `dataset[(i, words)]` -> `(i, uint8 image or None, View row)`."""

    def __init__(self, images: Any, transform: Any) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, tuple[int, int, int]]) -> tuple[int, Any, list[int]]:
        from ssld_zoo.train.data import DECODE_ERRORS, View, sample_seed
        i, words = key
        try:
            view, pixels = self.transform.view(self.images.encoded(i), sample_seed(words, i))
        except DECODE_ERRORS:
            return i, None, [-1] * View.FIELDS
        return i, pixels, view.as_row()


def _collate(items: list[tuple[int, Any, list[int]]]) -> list[tuple[int, Any, list[int]]]:
    return items


class _Labeler:
    """Runs the normalised, frozen teacher on batches of views and evaluation images."""

    def __init__(self, recipe: Any, teacher: Any, device: Any) -> None:
        import torch
        self.recipe, self.teacher, self.device = recipe, teacher, device
        self.memory_format = torch.channels_last if recipe.runtime.channels_last else torch.contiguous_format
        self.batch = recipe.cache.batch_size or recipe.batch_size

    def _logits(self, images: Any) -> Any:
        """The teacher's logits for a uint8 batch (n, 3, h, w)."""
        import contextlib

        import torch
        from ssld_zoo.train.networks import unit_pixels
        x = unit_pixels(images, self.device, self.memory_format)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.recipe.runtime.amp == "bf16"
                    else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            return self.teacher(x).float()

    def _batches(self, dataset: Any, keys: list[Any], what: str, show: bool) -> Iterator[list[Any]]:
        from tqdm import tqdm

        from ssld_zoo.train.data import loader
        batches = [keys[s:s + self.batch] for s in range(0, len(keys), self.batch)]
        yield from tqdm(loader(dataset, batches, workers=self.recipe.runtime.workers, collate=_collate),
                        total=len(batches), desc=what, unit="batch", disable=not show, dynamic_ncols=True)

    def label_views(self, images: Any, transform: Any, words: tuple[int, int, int], indices: Any, what: str,
                    show: bool) -> dict[str, Any]:
        """The top-k log-probabilities of view `words` of `images[indices]`, the teacher taking them in that order
        and in batches of the teacher batch size (undecodable images are left out of the batch, as in training)."""
        import numpy as np
        import torch

        from ssld_zoo.train.data import View
        k, classes = min(self.recipe.cache.topk, self.teacher.model.num_classes), self.teacher.model.num_classes
        n = len(indices)
        log_probs, top = np.zeros((n, k), np.float16), np.full((n, k), -1, np.int64)
        rows, row = np.empty((n, View.FIELDS), np.int64), 0
        for items in self._batches(_ViewsOf(images, transform), [(int(i), words) for i in indices], what, show):
            good = [j for j, item in enumerate(items) if item[1] is not None]
            if good:
                values = self._logits(torch.stack([items[j][1] for j in good])).log_softmax(-1).topk(k, dim=-1)
                at = np.asarray(good) + row
                log_probs[at] = values.values.half().cpu().numpy()
                top[at] = values.indices.cpu().numpy()
            rows[row:row + len(items)] = [item[2] for item in items]
            row += len(items)
        dtype = np.int16 if classes <= np.iinfo(np.int16).max else np.int32
        return {"index": np.asarray(indices, np.int64), "log_probs": log_probs, "classes": top.astype(dtype),
                "views": rows}

    def label_eval(self, images: Any, transform: Any, show: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The teacher's top-1 class of every evaluation image (eval preprocessing, BatchNorm in eval mode), and its
        top-1/top-5 accuracy."""
        import numpy as np
        from tqdm import tqdm

        from ssld_zoo.train.data import EvalBatches, ImageDataset, loader
        from ssld_zoo.train.scoring import score
        from ssld_zoo.train.networks import freeze_teacher
        self.teacher.eval()
        batches = loader(ImageDataset([images], transform), EvalBatches(len(images), self.batch),
                         workers=self.recipe.runtime.workers, pin_memory=False)
        with tqdm(total=len(images), desc="evaluation images", unit="img", disable=not show,
                  dynamic_ncols=True) as bar:
            scores = score(self._logits, batches, len(images), self.device, keep_predictions=True,
                           on_batch=bar.update)
        freeze_teacher(self.teacher.model, self.recipe.teacher.bn)
        assert scores.predictions is not None
        summary = {"labelled": scores.labelled, "skipped": scores.skipped, "top1": scores.top1, "top5": scores.top5}
        return {"index": np.arange(len(images), dtype=np.int64), "top1": scores.predictions.numpy()}, summary


def verify(recipe: Any, folder: str | Path | None, data_root: str | os.PathLike | None) -> dict[str, Any]:
    """Check a finished cache against `recipe` (every sha256, teacher, transform, data); returns its manifest."""
    from ssld_zoo.train.networks import build_teacher
    from ssld_zoo.train.soft_labels import open_cache
    teacher = build_teacher(recipe.teachers, data_root)
    return open_cache(recipe, teacher, data_root, folder).manifest


def cache_bytes(folder: Path) -> int:
    """Bytes of all files of a cache."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `cache` command's arguments."""
    parser.add_argument("recipe", type=Path, metavar="RECIPE.yaml", help="the recipe whose teacher, data and "
                                                                         "augmentation the soft-label cache is for")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="recipe overrides, e.g. cache.views=16 cache.topk=5 batch_size=256")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="soft-label cache folder (default: the recipe's cache.dir)")
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder for cifar10: sources "
                                                                 "(default: $SSLD_ZOO_DATA)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--verify", action="store_true", help="check an existing soft-label cache against the recipe "
                                                              "(every file's sha256, teacher, transform, data)")


def run(args: argparse.Namespace) -> Path:
    """Write (or verify) the cache as `args` say and print a summary."""
    from ssld_zoo.train.recipe import load_recipe
    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.teacher is None:
        raise SsldZooError(f"Recipe {args.recipe} has no teacher; a soft-label cache needs one.")
    if args.verify:
        where = args.out or recipe.cache.dir
        if where is None:
            raise SsldZooError(f"Recipe '{recipe.name}' sets no cache.dir; pass --out DIR with --verify.")
        manifest = verify(recipe, where, args.data)
        folder = Path(where)
        print(f"{folder}: complete, {len(manifest['files'])} files verified for teacher {recipe.teacher_names}")
        return folder
    from ssld_zoo.console import command_line, resumable
    with resumable(command_line):  # the same command again keeps every finished shard
        folder = write_cache(recipe, args.out, data_root=args.data, device=args.device)
    from ssld_zoo.train.soft_labels import read_manifest
    manifest = read_manifest(folder)
    images = sum(s["images"] for s in manifest["sources"])
    size = cache_bytes(folder)
    print(f"{folder}: {images} images x {manifest['views']} views, top-{manifest['topk']}, {size:,} bytes "
          f"({size / images:.0f} bytes per image)")
    return folder


def main(argv: Sequence[str] | None = None, prog: str = "ssld-zoo cache") -> int:
    from ssld_zoo.console import run_command
    return run_command(add_arguments, run, argv, prog=prog, description="Store a recipe teacher's soft labels once.")
