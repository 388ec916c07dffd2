"""Cost of the teacher: one training step of a student alone (supervised, cross-entropy) against the same step with
its frozen teacher online (SSLD symmetric KL) and with the teacher's soft labels read from a cache (top-k
log-probabilities completed by `losses.complete_topk`, as `soft_labels: cache` trains), measured side by side,
interleaved, in one run. The cached step includes copying the batch's top-k targets to the device.

    python benchmarks/bench_train.py                       # CPU-sized defaults
    python benchmarks/bench_train.py --device cuda --amp bf16 --channels-last --batch 256 --size 224

The step is the engine's: `ssld_zoo.train.networks.build_pair` (teacher frozen, BatchNorm in train mode as in
PaddleClas, its own input normalisation), `ssld_zoo.train.losses`, SGD with momentum. Weights are random (the cost
does not depend on them). Reference (issue 4, one H100, bf16, channels_last): ResNet-50-D 3292 img/s alone vs 1594
with a ResNeXt101-32x16d teacher (2.07x); MobileNetV3-large 8166 vs 4788 with a ResNet-50-D teacher (1.71x).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

PAIRS = {
    "cifar": ("resnet20_cifar", "resnet56_cifar"),
    "mobilenetv3": ("mobilenetv3_large_ssld", "resnet50d_ssld"),
    "resnet50d": ("resnet50d_ssld", "resnext101_32x16d"),
}


def make_step(student: torch.nn.Module, teacher: torch.nn.Module | None, args: argparse.Namespace,
              cached: tuple[torch.Tensor, torch.Tensor] | None = None):  # type: ignore[no-untyped-def]
    """One training step: supervised (no teacher), online (`teacher`), or from `cached` top-k (values, classes)."""
    from ssld_zoo.train.losses import ce, complete_topk, symmetric_kl
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    device_type = "cuda" if args.device == "cuda" else "cpu"

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device_type, torch.bfloat16) if args.amp == "bf16" else contextlib.nullcontext()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast():
            if cached is not None:
                values, classes = (t.to(x.device, non_blocking=True) for t in cached)
                loss = symmetric_kl(*complete_topk(student(x), values, classes, args.sparse)).mean()
            elif teacher is None:
                loss = ce(student(x), y).mean()
            else:
                with torch.no_grad():
                    target = teacher(x)
                loss = symmetric_kl(student(x), target).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def measure(step, x: torch.Tensor, y: torch.Tensor, steps: int, device: str) -> float:  # type: ignore[no-untyped-def]
    """Images per second over `steps` steps."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - start)


def bench_pair(name: str, args: argparse.Namespace) -> None:
    import ssld_zoo  # noqa: F401  (registers the zoo names with timm)
    from ssld_zoo.train.networks import build_pair
    from ssld_zoo.train.recipe import ModelSpec
    student_name, teacher_name = PAIRS[name]
    network, teacher = build_pair(ModelSpec(student_name), (ModelSpec(teacher_name, bn="train"),))
    student = network.module.to(args.device).train()
    teacher = teacher.to(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    student, teacher = student.to(memory_format=fmt), teacher.to(memory_format=fmt)
    size = 32 if name == "cifar" else args.size
    x = torch.rand(args.batch, 3, size, size, device=args.device).to(memory_format=fmt)
    y = torch.randint(0, 10 if name == "cifar" else 1000, (args.batch,), device=args.device)
    with torch.no_grad():
        top = teacher(x).float().log_softmax(-1).topk(min(args.topk, teacher.model.num_classes), dim=-1)
    cached = (top.values.half().cpu(), top.indices.cpu())
    steps = {"alone": make_step(student, None, args), "teacher online": make_step(student, teacher, args),
             "cached": make_step(student, None, args, cached)}
    for step in steps.values():  # warm-up
        measure(step, x, y, 2, args.device)
    rates: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for label, step in steps.items():
            rates[label].append(measure(step, x, y, args.steps, args.device))
    alone, online, cached_rate = (statistics.median(rates[k]) for k in steps)
    print(f"{student_name:<24} {teacher_name:<20} {size:>4} {args.batch:>5} {alone:>10.1f} {online:>12.1f} "
          f"{cached_rate:>12.1f} {alone / online:>7.2f}x {alone / cached_rate:>7.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=("bf16", "none"), default="none")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--batch", type=int, default=16, help="batch size (the cifar pair uses 128 at 32 px)")
    parser.add_argument("--size", type=int, default=128, help="input size of the ImageNet pairs")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--topk", type=int, default=10, help="classes kept per cached target")
    parser.add_argument("--sparse", choices=("uniform", "renormalize"), default="uniform")
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{device}; amp {args.amp}; channels_last {args.channels_last}; medians of {args.rounds} interleaved "
          f"rounds of {args.steps} steps; cached: top-{args.topk}, {args.sparse}")
    print(f"{'student':<24} {'teacher':<20} {'size':>4} {'batch':>5} {'alone img/s':>10} {'online img/s':>12} "
          f"{'cached img/s':>12} {'online':>8} {'cached':>8}  (ratios: step time / supervised step time)")
    for name in args.pairs:
        if name == "cifar":
            args_cifar = argparse.Namespace(**{**vars(args), "batch": 128})
            bench_pair(name, args_cifar)
        else:
            bench_pair(name, args)


if __name__ == "__main__":
    main()
