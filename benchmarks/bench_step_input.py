"""What a training step spends on its input before the networks run, side by side in one run: the uint8 batch made
into the normalised float batch that the student and the teacher take.

    before   floats first (`.float().div_(255)`), copied to channels_last, normalised by the student and again by the
             teacher (seven passes over the float batch)
    after    the layout changed on the uint8 bytes, the floats made by one division (`networks.unit_pixels`), one
             normalisation shared by both networks (what `train.engine` does when they normalise alike)

Both give the same values bit for bit (checked). Rounds are interleaved; medians are printed.

    python benchmarks/bench_step_input.py [--batch 32] [--size 224] [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ssld_zoo.train.networks import Normalized, unit_pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8)
    net = Normalized(torch.nn.Identity(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    def before() -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float().div_(255).contiguous(memory_format=torch.channels_last)
        return (x - net.mean) / net.std, (x - net.mean) / net.std

    def after() -> torch.Tensor:
        return net.normalize(unit_pixels(images, "cpu", torch.channels_last))

    assert torch.equal(before()[0], after()), "the two input paths must give the same values"
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name, path in (("before", before), ("after", after)):
            path()
            started = time.perf_counter()
            for _ in range(10):
                path()
            times[name].append((time.perf_counter() - started) / 10 * 1e3)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"batch {args.batch} x 3 x {args.size} x {args.size}, {torch.get_num_threads()} threads, median of "
          f"{args.rounds} interleaved rounds")
    for name, ms in medians.items():
        print(f"{name:<8}{ms:8.1f} ms per step")
    print(f"after / before: {medians['after'] / medians['before']:.2f}x the time")


if __name__ == "__main__":
    main()
