"""Run every ImageNet recipe for 2 optimizer steps at its real shapes, online and cache-fed, and report peak memory.

The recipes under `recipes/imagenet/` exist to regenerate the catalogue's ImageNet weights on GPUs, so nothing else
ever runs their real student and teacher architectures at their real input sizes through the engine. This script
does, on the CPU. For each recipe it keeps the student, the teacher (random weights, saved once as a safetensors file
so that the online run, the cache and the cache-fed run share it; nothing is downloaded), the loss, the input size,
the augmentation, the optimizer and the runtime settings (bf16 autocast, channels_last, EMA), and replaces only the
data (4 synthetic 500x375 JPEGs in 2 classes), the batch (2 images) and the schedule (one stage of one epoch: 2
optimizer steps). It trains once with the teacher run online, then writes the soft-label cache as `ssld-zoo cache`
does and trains again from it. Each recipe runs in its own process so its peak resident memory can be read
(`ru_maxrss` of that child).

    python benchmarks/run_imagenet_recipes.py                    # every recipe
    python benchmarks/run_imagenet_recipes.py -k lcnet -k b0     # recipes whose file name contains a pattern
    python benchmarks/run_imagenet_recipes.py --json out.json

A recipe that cannot run is a bug in it or in the engine; the script exits 1 and names it.
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = REPO_ROOT / "recipes" / "imagenet"
BATCH = 2
IMAGES = 4  # 2 optimizer steps of BATCH images


def write_images(folder: Path) -> None:
    """IMAGES ImageNet-sized JPEGs (500x375, the ImageNet median) in two class folders."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        path = folder / f"class{i % 2}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(path, quality=90)


def random_teacher_file(spec: dict[str, Any], folder: Path) -> str:
    """A safetensors file of random weights for the teacher `spec` names (the same for the online run, the cache
    and the cache-fed run, which check that they share one teacher by its weights' sha256)."""
    import timm
    import torch
    from safetensors.torch import save_file

    import ssld_zoo  # noqa: F401  (registers the zoo's names with timm)
    name = spec["model"].partition(".")[0]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **spec.get("model_args", {}))
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def at_small_scale(raw: dict[str, Any], images: Path, folder: Path) -> dict[str, Any]:
    """The recipe with random-weight models, the synthetic images, BATCH images a step and one 2-step stage."""
    small = copy.deepcopy(raw)
    teachers = small.get("teacher")
    for spec in teachers if isinstance(teachers, list) else [teachers] if teachers else []:
        spec["pretrained"] = random_teacher_file(spec, folder)
    small["student"]["pretrained"] = False
    source = {"source": f"imagefolder:{images}"}
    small["data"]["eval"] = dict(source)
    small["batch_size"] = BATCH
    first = small["stages"][0]
    small["stages"] = [{**first, "epochs": 1, "warmup_epochs": 0, "train": [dict(source, labels=False)]}]
    small["runtime"] = {**small.get("runtime", {}), "workers": 0, "compile": False, "checkpoint_every": 1000}
    return small


def run_one(path: Path, work: Path) -> dict[str, Any]:
    """Train `path`'s recipe 2 steps online, write its cache, train 2 steps from the cache (this process)."""
    import torch
    import yaml

    from ssld_zoo.train.cache import write_cache
    from ssld_zoo.train.engine import train
    from ssld_zoo.train.recipe import parse_recipe
    torch.manual_seed(0)
    images = work / "images"
    write_images(images)
    raw = at_small_scale(yaml.safe_load(path.read_text(encoding="utf-8")), images, work)
    timings = {}
    started = time.perf_counter()
    train(parse_recipe(raw, path=path), work / "online", device="cpu")
    timings["online_s"] = time.perf_counter() - started
    cached = dict(raw, soft_labels="cache", cache={"dir": str(work / "cache"), "views": 1, "topk": 10})
    recipe = parse_recipe(cached, path=path)
    started = time.perf_counter()
    write_cache(recipe, work / "cache", device="cpu", progress=False)
    timings["cache_s"] = time.perf_counter() - started
    started = time.perf_counter()
    train(recipe, work / "cached", device="cpu")
    timings["cache_fed_s"] = time.perf_counter() - started
    return {"recipe": path.name, "input_size": raw["data"]["input_size"], **timings,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="patterns", action="append", default=[], help="run recipes whose name has this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child process: run this recipe only
    args = parser.parse_args(argv)
    if args.one is not None:
        with tempfile.TemporaryDirectory(prefix="ssld_zoo_recipe_") as work:
            print(json.dumps(run_one(args.one, Path(work))))
        return 0
    paths = [p for p in sorted(RECIPES.glob("*.yaml")) if not args.patterns or any(k in p.name for k in args.patterns)]
    results, failed = [], []
    print(f"{'recipe':<44} {'px':>4} {'online s':>9} {'cache s':>8} {'cached s':>9} {'peak GiB':>9}")
    for path in paths:
        child = subprocess.run([sys.executable, __file__, "--one", str(path)], capture_output=True, text=True)
        if child.returncode != 0:
            failed.append(path.name)
            print(f"{path.name:<44} FAILED: {(child.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        row = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(row)
        print(f"{row['recipe']:<44} {row['input_size']:>4} {row['online_s']:>9.1f} {row['cache_s']:>8.1f} "
              f"{row['cache_fed_s']:>9.1f} {row['peak_rss_gib']:>9.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if failed:
        print(f"{len(failed)} recipe(s) could not run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
