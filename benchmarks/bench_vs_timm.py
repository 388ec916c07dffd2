"""`ssld-zoo train` side by side with timm's own distillation, on the same student, teacher, batch, dtype and images.

timm (>= 1.0.23) distils with `timm.task.LogitDistillationTask`, which its `train.py` feeds from
`timm.data.create_dataset` / `create_loader`. This benchmark uses that wiring from the installed timm (its
`train.py` is not in the package) and runs, back to back in one process and on the same image folder:

1. timm's task and loader, online: task loss weight 0, distillation weight 1 (label-free, as SSLD), KL at T;
2. timm, the student alone with cross-entropy (what training the student costs without a teacher);
3. `ssld-zoo train`, online (the teacher runs every step);
4. `ssld-zoo train`, cache-fed (the teacher's soft labels replayed from `ssld-zoo cache`, written beforehand and not
   timed).

Every path trains the same number of images with SGD, bf16 autocast and channels_last, with the teacher's fixed
random weights (saved once as safetensors, so both libraries load the same teacher). Each path's augmentation is its
own library's (timm's training transform; the recipe's pad-crop + flip at 32 px, RandomResizedCrop + flip at 224 px).
img/s counts training steps, data loading included, as the engine's `metrics.jsonl` does.

    python benchmarks/bench_vs_timm.py                               # 32 px, CIFAR-10 JPEGs (SSLD_ZOO_DATA)
    python benchmarks/bench_vs_timm.py --size 224 --images 256 --batch 32   # ImageNet-like JPEGs
    ... --rounds 3                                                   # interleaved, medians (a noisy machine)

Goals (issue 25): online >= 1.0x timm's distillation; cache-fed >= 1.0x timm's plain supervised training.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STUDENT, TEACHER, CLASSES = "resnet18", "resnet50", 10


def cifar_folder(folder: Path, images: int) -> Path:
    """The first `images` CIFAR-10 training images written out as an image folder (their stored JPEG bytes)."""
    from ssld_zoo.data.cifar import load_cifar10
    pack = load_cifar10("train")
    for i in range(images):
        path = folder / f"class{int(pack.labels[i])}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pack.jpeg(i))
    return folder


def imagenet_like_folder(folder: Path, images: int) -> Path:
    """`images` ImageNet-sized JPEGs (quality 90) cut from a real photo that matplotlib ships, in 10 class folders."""
    import numpy as np
    from matplotlib import cbook
    from PIL import Image
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = Image.open(f).convert("RGB")
    rng = np.random.default_rng(0)
    for i in range(images):
        width, height = int(rng.integers(300, 640)), int(rng.integers(240, 480))
        left, top = int(rng.integers(0, photo.width // 3)), int(rng.integers(0, photo.height // 3))
        crop = photo.crop((left, top, left + photo.width // 2, top + photo.height // 2)).resize((width, height))
        path = folder / f"class{i % CLASSES}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
    return folder


def teacher_file(folder: Path) -> Path:
    import timm
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    teacher = timm.create_model(TEACHER, num_classes=CLASSES)
    path = folder / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(path))
    return path


def timm_rate(images: Path, teacher: Path | None, args: argparse.Namespace) -> float:
    """img/s of timm's loader and task: distillation when `teacher` is given, else the student with cross-entropy."""
    import timm
    import torch
    from safetensors.torch import load_file
    from timm.data import create_dataset, create_loader
    from timm.task import ClassificationTask, LogitDistillationTask
    torch.manual_seed(0)
    student = timm.create_model(STUDENT, num_classes=CLASSES).to(memory_format=torch.channels_last)
    if teacher is not None:
        model = timm.create_model(TEACHER, num_classes=CLASSES)
        model.load_state_dict(load_file(teacher))
        task: Any = LogitDistillationTask(student, model.to(memory_format=torch.channels_last),
                                          criterion=torch.nn.CrossEntropyLoss(), task_loss_weight=0.0,
                                          distill_loss_weight=1.0, temperature=args.temperature, verbose=False)
    else:
        task = ClassificationTask(student, torch.nn.CrossEntropyLoss(), verbose=False)
    dataset = create_dataset("", root=str(images), is_training=True)
    loader = create_loader(dataset, input_size=(3, args.size, args.size), batch_size=args.batch, is_training=True,
                           num_workers=args.workers, persistent_workers=False, use_prefetcher=False,
                           device=torch.device("cpu"))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    task.train()
    seen, started = 0, time.perf_counter()
    for x, y in loader:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = task(x, y)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(x)
    return seen / (time.perf_counter() - started)


def zoo_recipe(images: Path, teacher: Path, args: argparse.Namespace, cache: Path | None) -> dict[str, Any]:
    augment: dict[str, Any] = ({"pad_crop": 4, "hflip": True} if args.size <= 64
                               else {"random_resized_crop": True, "hflip": True})
    recipe: dict[str, Any] = {
        "name": "bench_student",
        "student": {"model": STUDENT, "model_args": {"num_classes": CLASSES}},
        "teacher": {"model": TEACHER, "pretrained": str(teacher), "model_args": {"num_classes": CLASSES},
                    "bn": "eval"},
        "loss": {"type": "kl", "temperature": args.temperature},
        "data": {"input_size": args.size, "augment": augment},
        "batch_size": args.batch,
        "optimizer": {"momentum": 0.9},
        "stages": [{"name": "stage1", "epochs": 1, "lr": 0.01,
                    "train": [{"source": f"imagefolder:{images}", "labels": False}]}],
        "runtime": {"amp": "bf16", "channels_last": True, "workers": args.workers, "seed": 0,
                    "checkpoint_every": 100000, "log_every": 100000},
    }
    if cache is not None:
        recipe.update(soft_labels="cache", cache={"dir": str(cache), "views": 1, "topk": CLASSES})
    return recipe


def zoo_rate(images: Path, teacher: Path, args: argparse.Namespace, work: Path, cached: bool) -> float:
    """img/s of `ssld-zoo train` (the first stage's training throughput from its metrics.jsonl)."""
    from ssld_zoo.train.cache import write_cache
    from ssld_zoo.train.engine import METRICS_FILE, train
    from ssld_zoo.train.recipe import parse_recipe
    name = "cached" if cached else "online"
    recipe = parse_recipe(zoo_recipe(images, teacher, args, work / "cache" if cached else None))
    if cached:
        write_cache(recipe, work / "cache", device="cpu", progress=False)
    train(recipe, work / name, device="cpu")
    records = [json.loads(line) for line in (work / name / METRICS_FILE).read_text().splitlines()]
    return float(next(r["img_per_s"] for r in records if r.get("img_per_s")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="input size: 32 (CIFAR-10 JPEGs) or more (ImageNet-like)")
    parser.add_argument("--images", type=int, default=12800)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1, help="run the four paths this many times, interleaved, and "
                                                               "report each path's median (a noisy machine)")
    args = parser.parse_args(argv)
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {STUDENT} <- {TEACHER}, {args.size} px, "
          f"batch {args.batch}, {args.images} images, bf16, channels_last, {args.workers} workers, "
          f"T={args.temperature}")
    with tempfile.TemporaryDirectory(prefix="ssld_zoo_vs_timm_") as tmp:
        work = Path(tmp)
        images = (cifar_folder if args.size <= 64 else imagenet_like_folder)(work / "images", args.images)
        teacher = teacher_file(work)
        paths = {"timm distillation (online)": lambda _: timm_rate(images, teacher, args),
                 "timm student alone (cross-entropy)": lambda _: timm_rate(images, None, args),
                 "ssld-zoo train (online)": lambda n: zoo_rate(images, teacher, args, work / f"r{n}", cached=False),
                 "ssld-zoo train (cache-fed)": lambda n: zoo_rate(images, teacher, args, work / f"r{n}", cached=True)}
        runs: dict[str, list[float]] = {path: [] for path in paths}
        for n in range(args.rounds):
            for path, rate_of in paths.items():
                runs[path].append(rate_of(n))
    rates = {path: statistics.median(values) for path, values in runs.items()}
    for path, rate in rates.items():
        rounds = f"  (rounds: {', '.join(f'{v:.1f}' for v in runs[path])})" if args.rounds > 1 else ""
        print(f"{path:<38} {rate:8.1f} img/s{rounds}")
    for name, ours, theirs in (("online: ssld-zoo / timm distillation", "ssld-zoo train (online)",
                                "timm distillation (online)"),
                               ("cache-fed: ssld-zoo / timm student alone", "ssld-zoo train (cache-fed)",
                                "timm student alone (cross-entropy)")):
        per_round = [a / b for a, b in zip(runs[ours], runs[theirs])]
        rounds = f" (rounds: {', '.join(f'{r:.2f}' for r in per_round)})" if args.rounds > 1 else ""
        print(f"{name} = {rates[ours] / rates[theirs]:.2f}x{rounds} (goal >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
