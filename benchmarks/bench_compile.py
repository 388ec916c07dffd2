"""CPU inference throughput of a zoo model: `torch.compile` (default backend, inductor) against eager, side by side.

Eager and compiled are timed in alternating rounds on the same inputs, so that load from other processes hits both
alike; the speedup is the median of the per-round ratios (with their range). Weights are random: speed does not
depend on them. The one-off compile time and the largest output difference are printed too.

    python benchmarks/bench_compile.py [--model mobilenetv3_large_ssld] [--batch 8] [--rounds 7] [--iters 5]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable

import torch

import ssld_zoo


def images_per_second(fn: Callable[[], torch.Tensor], batch: int, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return batch * iters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv3_large_ssld")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=5, help="batches per round and variant")
    parser.add_argument("--mode", default="default", help="torch.compile mode (default, max-autotune-no-cudagraphs)")
    args = parser.parse_args()

    model = ssld_zoo.create(args.model).eval()
    size = model.pretrained_cfg["input_size"]
    x = torch.randn(args.batch, *size, generator=torch.Generator().manual_seed(0))
    compiled = torch.compile(model, mode=args.mode)
    with torch.inference_mode():
        start = time.perf_counter()
        out = compiled(x)
        compile_s = time.perf_counter() - start
        max_diff = float((out - model(x)).abs().max())
        eager_ips, compiled_ips = [], []
        for _ in range(args.rounds):
            eager_ips.append(images_per_second(lambda: model(x), args.batch, args.iters))
            compiled_ips.append(images_per_second(lambda: compiled(x), args.batch, args.iters))
    ratios = [c / e for c, e in zip(compiled_ips, eager_ips)]
    print(f"{args.model} at {size[1]} px, batch {args.batch}, fp32, {args.rounds} alternating rounds of "
          f"{args.iters} batches; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print(f"compile (first call): {compile_s:.1f} s; max |compiled - eager| = {max_diff:.2e}")
    print(f"{'':10}{'img/s (median)':>16}")
    print(f"{'eager':10}{statistics.median(eager_ips):>16.1f}")
    print(f"{'compiled':10}{statistics.median(compiled_ips):>16.1f}")
    print(f"speedup compiled/eager: {statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
