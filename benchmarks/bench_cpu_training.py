"""CPU training at the machine's speed: the engine's step against a bare hand-written PyTorch loop, across dtypes,
memory layouts, torch.compile, intra-op threads and data-loader workers, measured side by side in one run.

    python benchmarks/bench_cpu_training.py                  # everything, CPU-sized (about 10 minutes on 2 cores)
    python benchmarks/bench_cpu_training.py --only step      # one section: step | teacher | threads | data | cache
    python benchmarks/bench_cpu_training.py --device cuda    # the same on a GPU

Sections (ResNet-20 student, ResNet-56 teacher, CIFAR-10 32x32, random weights: the cost does not depend on them):

- `step`: one supervised training step of the engine (`Trainer._step`: lr, per-step seed, normalisation, loss,
  backward, SGD, statistics kept on the device) against the bare loop (normalise, forward, cross-entropy, backward,
  SGD) on the same in-memory batches, for fp32 / bf16 autocast x NCHW / channels_last, and torch.compile;
- `teacher`: ResNet-56 inference (`no_grad`, the teacher's eval mode) for the same settings;
- `threads`: the fastest step setting with 1 and 2 intra-op threads;
- `data`: whole epochs of the engine on the real CIFAR-10 JPEG pack (`$SSLD_ZOO_DATA`) with the images decoded in
  the main process (workers 0) or in 1 or 2 loader workers, against the bare loop on batches already in memory;
- `cache`: the engine's SSLD step fed from a soft-label cache (top-10 log-probabilities, completed as
  `soft_labels: cache` does) against its supervised step.

Each ratio is the median of per-round ratios; the rounds interleave the two sides so a busy machine slows both.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"fp32 NCHW": (None, False), "fp32 channels_last": (None, True), "bf16 NCHW": ("bf16", False),
            "bf16 channels_last": ("bf16", True)}


def recipe(amp: str | None, channels_last: bool, *, compile: bool = False, workers: int = 0,
           teacher: bool = False, batch: int = 128) -> Any:
    """A CIFAR recipe (supervised, or SSLD with the ResNet-56 teacher) with the given runtime settings."""
    from ssld_zoo.train.recipe import apply_overrides, load_recipe, parse_recipe
    base = load_recipe(REPO / "recipes" / "cifar10" / ("b_ssld.yaml" if teacher else "a_supervised.yaml"))
    raw = apply_overrides(base.raw, [f"batch_size={batch}", f"runtime.amp={amp or 'null'}",
                                     f"runtime.channels_last={str(channels_last).lower()}",
                                     f"runtime.compile={str(compile).lower()}", f"runtime.workers={workers}",
                                     "runtime.log_every=1000000", "runtime.checkpoint_every=1000000"])
    raw["data"].pop("eval", None)
    raw["stages"] = raw["stages"][:1]
    return parse_recipe(raw)


def trainer(r: Any, device: str, run_dir: Path) -> Any:
    from ssld_zoo.train import distributed
    from ssld_zoo.train.engine import Trainer
    torch.manual_seed(0)
    return Trainer(r, run_dir, distributed.setup(device), None)


def batches(n: int, batch: int, device: str, seed: int = 0) -> list[Any]:
    """`n` random uint8 CIFAR-sized batches with labels, as the data loader yields them."""
    from ssld_zoo.train.data import Batch
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (batch,), generator=g), torch.arange(batch), 0) for _ in range(n)]


def bare_step(r: Any, device: str) -> Callable[[Any], None]:
    """The hand-written loop: the same model, dtype, layout and optimizer, nothing else."""
    import ssld_zoo
    torch.manual_seed(0)
    model = ssld_zoo.create("resnet20_cifar").to(device)
    layout = torch.channels_last if r.runtime.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout).train()
    forward = torch.compile(model) if r.runtime.compile else model
    mean = torch.tensor((0.485, 0.456, 0.406), device=device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), device=device).view(1, 3, 1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    autocast = (lambda: torch.autocast(torch.device(device).type, torch.bfloat16)) if r.runtime.amp == "bf16" \
        else contextlib.nullcontext

    def step(batch: Any) -> None:
        x = batch.images.to(device, non_blocking=True).float().div_(255).contiguous(memory_format=layout)
        y = batch.labels.to(device, non_blocking=True)
        with autocast():
            logits = forward((x - mean) / std)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def engine_step(t: Any) -> Callable[[Any], None]:
    """The engine's own step, as `Trainer._run_epoch` calls it (the flush every `log_every` steps included)."""
    from ssld_zoo.train.engine import Pending, Totals
    from ssld_zoo.train.optim import make_optimizer
    optimizer = make_optimizer(t.student, t.recipe.stages[0], t.recipe)
    pending, totals = Pending(t.ctx.device), Totals()
    t.student.train()

    def step(batch: Any) -> None:
        t._step(batch, optimizer, 0.1, pending)
        t.position.global_step += 1
        if t.position.global_step % 50 == 0:
            pending.flush(t.ctx, totals)
    return step


def timed(step: Callable[[Any], None], data: list[Any], device: str) -> float:
    """Images per second of `step` over `data`."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for b in data:
        step(b)
    sync()
    return sum(len(b.labels) for b in data) / (time.perf_counter() - start)


def side_by_side(a: Callable[[Any], None], b: Callable[[Any], None], data: list[Any], args: argparse.Namespace
                 ) -> tuple[float, float, float]:
    """(img/s of a, img/s of b, median per-round ratio of a's step time to b's), interleaved."""
    for f in (a, b):
        f(data[0])
        f(data[1])
    ra, rb, ratios = [], [], []
    for _ in range(args.rounds):
        x, y = timed(a, data, args.device), timed(b, data, args.device)
        ra.append(x)
        rb.append(y)
        ratios.append(x / y)
    return statistics.median(ra), statistics.median(rb), statistics.median(ratios)


def section_step(args: argparse.Namespace, tmp: Path) -> None:
    print(f"\n## Training step: ResNet-20, batch {args.batch}, 32x32 (engine vs bare loop)\n")
    print("| setting | bare img/s | engine img/s | engine / bare step time |\n|---|---|---|---|")
    settings = dict(SETTINGS)
    settings["bf16 channels_last + compile"] = ("bf16", True)
    for name, (amp, cl) in settings.items():
        r = recipe(amp, cl, compile="compile" in name, batch=args.batch)
        data = batches(args.steps, args.batch, args.device)
        bare, engine, ratio = side_by_side(bare_step(r, args.device),
                                           engine_step(trainer(r, args.device, tmp / name)), data, args)
        print(f"| {name} | {bare:.0f} | {engine:.0f} | {ratio:.3f}x |", flush=True)


def section_teacher(args: argparse.Namespace, tmp: Path) -> None:
    import ssld_zoo
    print(f"\n## Teacher inference: ResNet-56, batch {args.batch}, 32x32, no_grad\n")
    print("| setting | img/s | vs fp32 NCHW |\n|---|---|---|")
    data = batches(args.steps, args.batch, args.device)
    settings = dict(SETTINGS)
    settings["bf16 channels_last + compile"] = ("bf16", True)
    steps = {}
    for name, (amp, cl) in settings.items():
        model = ssld_zoo.create("resnet56_cifar").to(args.device).eval()
        layout = torch.channels_last if cl else torch.contiguous_format
        model = model.to(memory_format=layout)
        forward = torch.compile(model) if "compile" in name else model

        def infer(batch: Any, forward: Any = forward, layout: Any = layout, amp: Any = amp) -> None:
            x = batch.images.to(args.device).float().div_(255).contiguous(memory_format=layout)
            with torch.no_grad(), (torch.autocast(torch.device(args.device).type, torch.bfloat16) if amp
                                   else contextlib.nullcontext()):
                forward(x)
        infer(data[0])
        steps[name] = infer
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, infer in steps.items():
            rates[name].append(timed(infer, data, args.device))
    base = statistics.median(rates["fp32 NCHW"])
    for name in steps:
        rate = statistics.median(rates[name])
        print(f"| {name} | {rate:.0f} | {rate / base:.2f}x |", flush=True)


def section_threads(args: argparse.Namespace, tmp: Path) -> None:
    print(f"\n## Intra-op threads: engine step, bf16 channels_last, batch {args.batch}\n")
    print("| threads | engine img/s |\n|---|---|")
    r = recipe("bf16", True, batch=args.batch)
    data = batches(args.steps, args.batch, args.device)
    step = engine_step(trainer(r, args.device, tmp / "threads"))
    step(data[0])
    before = torch.get_num_threads()
    rates: dict[int, list[float]] = {n: [] for n in sorted({1, before})}
    for _ in range(args.rounds):
        for n in rates:
            torch.set_num_threads(n)
            rates[n].append(timed(step, data, args.device))
    torch.set_num_threads(before)
    for n, values in rates.items():
        print(f"| {n} | {statistics.median(values):.0f} |", flush=True)


def section_data(args: argparse.Namespace, tmp: Path) -> None:
    """Engine epochs on real JPEGs (decoding included) against the bare loop on in-memory batches. The engine's rate
    is its own `img_per_s` of the second epoch (the first also decodes every JPEG once; later ones reuse them)."""
    import json
    from ssld_zoo.train.engine import train
    from ssld_zoo.train.recipe import parse_recipe
    if not os.environ.get("SSLD_ZOO_DATA"):
        print("\n(data section skipped: set SSLD_ZOO_DATA to the folder holding cifar10/)")
        return
    images = args.steps * args.batch
    print(f"\n## Data loading: epochs of {images} real CIFAR-10 JPEGs, bf16 channels_last, batch {args.batch}\n")
    print("| engine, images decoded in | epoch 1 img/s | epoch 2 img/s | bare loop (in memory) img/s | "
          "epoch 2 / bare step time |\n|---|---|---|---|---|")
    data = batches(args.steps, args.batch, args.device)
    bare = bare_step(recipe("bf16", True, batch=args.batch), args.device)
    bare(data[0])
    for workers in (0, 1, 2):
        raw = dict(recipe("bf16", True, workers=workers, batch=args.batch).raw)
        raw["stages"] = [dict(raw["stages"][0], epochs=2, train=[{"source": "cifar10:train",
                                                                   "subset": f"per_class:{images // 10}"}])]
        first, second, bare_rates, ratios = [], [], [], []
        for round_ in range(args.rounds):
            run = tmp / f"data-w{workers}-{round_}"
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                train(parse_recipe(raw), run, device=args.device)
            epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            first.append(epochs[0]["img_per_s"])
            second.append(epochs[1]["img_per_s"])
            bare_rates.append(timed(bare, data, args.device))
            ratios.append(bare_rates[-1] / second[-1])
        where = "the main process" if workers == 0 else f"{workers} worker{'s' * (workers > 1)}"
        print(f"| {where} | {statistics.median(first):.0f} | {statistics.median(second):.0f} | "
              f"{statistics.median(bare_rates):.0f} | {statistics.median(ratios):.2f}x |", flush=True)


def section_cache(args: argparse.Namespace, tmp: Path) -> None:
    from ssld_zoo.train.data import Batch
    print(f"\n## Cache-fed SSLD step vs supervised step: engine, bf16 channels_last, batch {args.batch}\n")
    sup = recipe("bf16", True, batch=args.batch)
    ssld_raw = dict(recipe("bf16", True, batch=args.batch, teacher=True).raw)
    ssld_raw.update(soft_labels="cache", cache={"dir": str(tmp), "topk": 10})
    from ssld_zoo.train.recipe import parse_recipe
    ssld = parse_recipe(ssld_raw)
    data = batches(args.steps, args.batch, args.device)
    g = torch.Generator().manual_seed(1)
    cached = []
    for b in data:
        logits = torch.randn(len(b.labels), 10, generator=g) * 3
        values = logits.log_softmax(-1).topk(10, dim=-1)
        cached.append(Batch(b.images, b.labels, b.indices, 0, values.values.half(), values.indices))
    t_sup = trainer(sup, args.device, tmp / "sup")
    t_ssld = trainer(parse_recipe({**ssld_raw, "soft_labels": "online"}), args.device, tmp / "ssld")
    t_ssld.teacher = None  # what `soft_labels: cache` leaves: no teacher, targets from the batch
    t_ssld.recipe = ssld
    s, c = engine_step(t_sup), engine_step(t_ssld)
    for f, d in ((s, data), (c, cached)):
        f(d[0])
    rs, rc, ratios = [], [], []
    for _ in range(args.rounds):
        rs.append(timed(s, data, args.device))
        rc.append(timed(c, cached, args.device))
        ratios.append(rs[-1] / rc[-1])
    print("| step | img/s |\n|---|---|")
    print(f"| supervised (cross-entropy) | {statistics.median(rs):.0f} |")
    print(f"| SSLD from the cache (top-10, symmetric KL) | {statistics.median(rc):.0f} |")
    print(f"\ncached SSLD / supervised step time: {statistics.median(ratios):.3f}x", flush=True)


SECTIONS = {"step": section_step, "teacher": section_teacher, "threads": section_threads, "data": section_data,
            "cache": section_cache}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="steps (batches) per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, device {args.device}, "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(SECTIONS):
            SECTIONS[name](args, Path(tmp) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
