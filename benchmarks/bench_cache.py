"""Soft-label cache: writing throughput (teacher img/s), size on disk (bytes per image), and the data-loading cost of
replaying a cached view (one image's views + soft labels) against drawing a fresh online view, side by side.

    SSLD_ZOO_DATA=../shared/data python benchmarks/bench_cache.py                 # CPU-sized defaults
    python benchmarks/bench_cache.py --images 5000 --views 8 --device cuda

It writes a real cache with `ssld_zoo.train.cache.write_cache` for a CIFAR-10 recipe (teacher ResNet-56, student
ResNet-20) on `--images` training images (per_class subset), then times `CachedDataset[i]` against
`ImageDataset[i]` (decode + augment) interleaved over the same images. The training-step comparison (cached vs
supervised vs online) is `benchmarks/bench_train.py`.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

RECIPE = {
    "name": "bench_cache", "student": {"model": "resnet20_cifar"},
    "teacher": {"model": "resnet56_cifar", "pretrained": True, "bn": "train"},
    "loss": {"type": "symmetric_kl"},
    "data": {"input_size": 32, "augment": {"pad_crop": 4, "hflip": True}},
    "batch_size": 128,
    "stages": [{"name": "stage1", "epochs": 1, "lr": 0.1, "train": [{"source": "cifar10:train", "labels": False}]}],
    "runtime": {"workers": 2, "seed": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="training images (a multiple of 10)")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    from ssld_zoo.train.cache import cache_bytes, write_cache
    from ssld_zoo.train.data import ImageDataset, Transform, open_source
    from ssld_zoo.train.networks import build_network
    from ssld_zoo.train.recipe import parse_recipe
    from ssld_zoo.train.soft_labels import CachedDataset, open_cache
    raw = copy.deepcopy(RECIPE)
    raw["stages"][0]["train"][0]["subset"] = f"per_class:{args.images // 10}"
    raw["cache"] = {"views": args.views, "topk": args.topk}
    recipe = parse_recipe(raw)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cache"
        start = time.perf_counter()
        write_cache(recipe, folder, device=device, progress=False)
        seconds = time.perf_counter() - start
        written = args.images * args.views
        size = cache_bytes(folder)
        name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        print(f"{name}; teacher resnet56_cifar, {args.images} images x {args.views} views, top-{args.topk}")
        print(f"writing: {written} views in {seconds:.1f} s = {written / seconds:.0f} teacher img/s "
              "(decode, augment, teacher forward, top-k, hashing and writing included)")
        print(f"size: {size:,} bytes = {size / args.images:.0f} bytes per image ({size / written:.0f} per view)")
        teacher = build_network(recipe.teacher, "teacher").module
        labels = open_cache(recipe, teacher, folder=folder)
        source = open_source(recipe.stages[0].train[0])
        transform = Transform(32, recipe.data.augment, train=True, fill=tuple(labels.manifest["fill"]))
        loaders = {"online view": ImageDataset([source], transform),
                   "cached view + soft labels": CachedDataset([source], [0], transform, labels, first_epoch=0)}
        timings: dict[str, list[float]] = {k: [] for k in loaders}
        for round_ in range(args.rounds + 1):
            for label, dataset in loaders.items():
                start = time.perf_counter()
                for i in range(args.images):
                    dataset[(i, (0, 0, round_ % args.views))]
                if round_:  # the first round warms caches and memory maps
                    timings[label].append((time.perf_counter() - start) / args.images * 1e6)
        online, cached = (statistics.median(timings[k]) for k in loaders)
        print(f"data loading per image (one process): online view {online:.1f} us, cached view + soft labels "
              f"{cached:.1f} us ({cached / online:.2f}x)")


if __name__ == "__main__":
    main()
