"""`ssld-zoo bench`: latency (batch 1) and throughput (batch N) of zoo models on this machine.

Every combination of device, dtype (fp32, or bf16 under autocast) and memory format (channels_last off/on) gets one
row per batch size. Models are built with random weights (speed does not depend on them) at their weight's input
size. Where a zoo name is a stock timm architecture, `timm.create_model(architecture)` is timed in the same run,
alternating round by round with the zoo model under the same settings, and the ratio zoo/timm is reported.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from ssld_zoo.errors import SsldZooError

if TYPE_CHECKING:
    import torch

DTYPES = ("fp32", "bf16")
DEVICES = ("cpu", "cuda")
CHANNELS_LAST = {"off": False, "on": True}
TABLE_COLUMNS = (("device", 6), ("dtype", 5), ("layout", 6), ("batch", 5), ("px", 4), ("median ms", 10),
                 ("p90 ms", 9), ("img/s", 9), ("timm ms", 9), ("zoo/timm", 19))


@dataclass(frozen=True)
class Settings:
    """What to time and how: one row per device x channels_last x dtype x batch size, for each model."""

    batch_size: int = 32
    dtypes: tuple[str, ...] = DTYPES
    channels_last: tuple[bool, ...] = (False, True)
    devices: tuple[str, ...] = ("cpu",)
    input_size: int | None = None
    warmup: int = 3
    rounds: int = 5
    iters: int | None = 5
    seconds: float | None = None
    threads: int | None = None
    compare_timm: bool = True

    def __post_init__(self) -> None:
        for dtype in self.dtypes:
            if dtype not in DTYPES:
                raise SsldZooError(f"Unknown dtype '{dtype}': choose from {', '.join(DTYPES)}.")
        for device in self.devices:
            if device not in DEVICES:
                raise SsldZooError(f"Unknown device '{device}': choose from {', '.join(DEVICES)}.")
        if not (self.dtypes and self.devices and self.channels_last):
            raise SsldZooError("Give at least one dtype, one device and one channels_last setting.")
        for label, value in (("batch size", self.batch_size), ("number of rounds", self.rounds),
                             ("input size", self.input_size), ("number of threads", self.threads)):
            if value is not None and value < 1:
                raise SsldZooError(f"The {label} must be at least 1 (got {value}).")
        if self.warmup < 0:
            raise SsldZooError(f"Warm-up iterations cannot be negative (got {self.warmup}).")
        if (self.iters is None) == (self.seconds is None):
            raise SsldZooError("Give exactly one of iterations per round and seconds per model.")
        if (self.iters is not None and self.iters < 1) or (self.seconds is not None and self.seconds <= 0):
            raise SsldZooError("Iterations per round must be at least 1 and seconds per model above 0.")

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch 1 (latency), then the throughput batch if it differs."""
        return (1,) if self.batch_size == 1 else (1, self.batch_size)


@dataclass(frozen=True)
class Subject:
    """One zoo model to time: its name (with tag), input size and, for stock architectures, its timm twin."""

    name: str
    input_size: tuple[int, int, int]
    timm_architecture: str | None
    timm_args: dict[str, Any]
    num_classes: int


def resolve_subjects(names: Sequence[str], settings: Settings) -> list[Subject]:
    """Zoo names (fnmatch patterns and `name.tag` allowed) -> what to time; unknown names fail before any work."""
    from ssld_zoo.catalogue.registry import get_model_entry, get_weight_entry, list_models
    expanded: list[str] = []
    for name in names:
        if any(c in name for c in "*?["):
            matches = list_models(name)
            if not matches:
                raise SsldZooError(f"No model matches '{name}'. `ssld-zoo list` shows every model.")
            expanded += matches
        else:
            get_model_entry(name)
            expanded.append(name)
    subjects = []
    for name in dict.fromkeys(expanded):
        entry, weight = get_model_entry(name), get_weight_entry(name)
        channels, height, width = weight.preprocessing["input_size"]
        if settings.input_size is not None:
            height = width = settings.input_size
        stock = settings.compare_timm and entry.is_stock_architecture
        subjects.append(Subject(name=name, input_size=(channels, height, width),
                                timm_architecture=entry.architecture if stock else None,
                                timm_args=dict(entry.model_args), num_classes=entry.num_classes))
    return subjects


def environment(settings: Settings) -> dict[str, Any]:
    """Versions, hardware and thread count the numbers were measured with."""
    import timm
    import torch
    from ssld_zoo.version import __version__
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "ssld_zoo": __version__, "torch": torch.__version__, "timm": timm.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if "cuda" in settings.devices else None,
        "cuda_device": torch.cuda.get_device_name() if "cuda" in settings.devices else None,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _quantile(sorted_samples: list[float], q: float) -> float:
    """Nearest-rank quantile of already sorted samples."""
    return sorted_samples[max(0, math.ceil(q * len(sorted_samples)) - 1)]


def summarize(rounds_ms: list[list[float]], batch_size: int) -> dict[str, Any]:
    """Median, p90 and minimum per-call time (ms) over every timed call, and images per second at the median."""
    samples = sorted(t for r in rounds_ms for t in r)
    median = statistics.median(samples)
    return {"median_ms": round(median, 4), "p90_ms": round(_quantile(samples, 0.9), 4),
            "min_ms": round(samples[0], 4), "img_per_s": round(batch_size * 1e3 / median, 3),
            "samples": len(samples)}


def _time_calls(model: Callable[[Any], Any], x: Any, sync: Callable[[], None], iters: int | None,
                seconds: float | None) -> list[float]:
    """Per-call wall times (ms) of `iters` calls, or of as many calls as fit in `seconds` (at least one)."""
    times: list[float] = []
    budget_ms = seconds * 1e3 if seconds is not None else math.inf
    while (iters is None or len(times) < iters) and (iters is not None or sum(times) < budget_ms):
        start = time.perf_counter()
        model(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure(models: Mapping[str, Callable[[Any], Any]], x: Any, settings: Settings,
            sync: Callable[[], None]) -> dict[str, list[list[float]]]:
    """Warm every model up, then time them in alternating rounds (order flipped every round); ms per call by round."""
    for model in models.values():
        for _ in range(settings.warmup):
            model(x)
        sync()
    seconds = settings.seconds / settings.rounds if settings.seconds is not None else None
    order = list(models)
    by_round: dict[str, list[list[float]]] = {key: [] for key in order}
    for index in range(settings.rounds):
        for key in order if index % 2 == 0 else reversed(order):
            by_round[key].append(_time_calls(models[key], x, sync, settings.iters, seconds))
    return by_round


def _ratio(zoo: list[list[float]], timm_: list[list[float]]) -> tuple[float, list[float]]:
    """zoo/timm time ratio of each pair of adjacent rounds: their median, and their lowest and highest (the noise)."""
    per_round = [statistics.median(z) / statistics.median(t) for z, t in zip(zoo, timm_)]
    return round(statistics.median(per_round), 4), [round(min(per_round), 4), round(max(per_round), 4)]


def _build(subject: Subject) -> dict[str, torch.nn.Module]:
    import timm
    from ssld_zoo.models.factory import create
    models = {"zoo": create(subject.name, pretrained=False).eval()}
    if subject.timm_architecture:
        models["timm"] = timm.create_model(subject.timm_architecture, pretrained=False,
                                           num_classes=subject.num_classes, **subject.timm_args).eval()
    return models


def _bench_subject(subject: Subject, settings: Settings) -> Iterator[dict[str, Any]]:
    """Rows for one model (and its timm twin), one per device x channels_last x dtype x batch size."""
    import torch
    models = _build(subject)
    for device in settings.devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for channels_last in settings.channels_last:
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            for model in models.values():
                model.to(device=device,  # type: ignore[call-overload]  # torch's overloads take these only apart
                         memory_format=memory_format)
            for dtype in settings.dtypes:
                autocast = (torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16"
                            else contextlib.nullcontext())
                for batch_size in settings.batch_sizes:
                    x = torch.randn(batch_size, *subject.input_size, device=device)
                    x = x.contiguous(memory_format=memory_format)
                    with torch.inference_mode(), autocast:
                        times = measure(models, x, settings, sync)
                    row = {"model": subject.name, "device": device, "dtype": dtype, "channels_last": channels_last,
                           "batch_size": batch_size, "input_size": list(subject.input_size),
                           **summarize(times["zoo"], batch_size), "timm": None, "zoo_timm_ratio": None,
                           "zoo_timm_ratio_range": None}
                    if "timm" in times:
                        row["timm"] = {"architecture": subject.timm_architecture,
                                       **summarize(times["timm"], batch_size)}
                        row["zoo_timm_ratio"], row["zoo_timm_ratio_range"] = _ratio(times["zoo"], times["timm"])
                    yield row


def benchmark(names: Sequence[str], settings: Settings,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Time `names` under every combination in `settings`.

    Returns `{"environment": ..., "settings": ..., "rows": [...]}`; each row holds its own settings, the zoo model's
    `median_ms` / `p90_ms` / `min_ms` / `img_per_s`, and for stock architectures `timm` (the same for timm's model) and
    `zoo_timm_ratio` with its per-round `zoo_timm_ratio_range`. `on_row` sees each row as soon as it is measured.
    """
    import torch
    if "cuda" in settings.devices and not torch.cuda.is_available():
        raise SsldZooError(f"CUDA was asked for, but torch {torch.__version__} finds no CUDA device here "
                           "(torch.cuda.is_available() is False). Use --device cpu, or run on a GPU machine.")
    subjects = resolve_subjects(names, settings)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if "cuda" in settings.devices:
        torch.backends.cudnn.benchmark = True
    rows = []
    for subject in subjects:
        for row in _bench_subject(subject, settings):
            rows.append(row)
            if on_row:
                on_row(row)
    return {"environment": environment(settings), "settings": _settings_json(settings), "rows": rows}


def _settings_json(settings: Settings) -> dict[str, Any]:
    data = asdict(settings)
    data["channels_last"] = [{v: k for k, v in CHANNELS_LAST.items()}[b] for b in settings.channels_last]
    return data


def command_line(names: Sequence[str], settings: Settings, json_out: str | None = None) -> str:
    """The `ssld-zoo bench` command that reproduces `settings` (every option spelled out)."""
    parts = ["ssld-zoo", "bench", *names, "--batch-size", str(settings.batch_size), "--dtype", *settings.dtypes,
             "--channels-last", *_settings_json(settings)["channels_last"], "--device", *settings.devices,
             "--warmup", str(settings.warmup), "--rounds", str(settings.rounds)]
    parts += ["--iters", str(settings.iters)] if settings.iters is not None else ["--seconds", str(settings.seconds)]
    if settings.input_size is not None:
        parts += ["--input-size", str(settings.input_size)]
    if settings.threads is not None:
        parts += ["--threads", str(settings.threads)]
    if not settings.compare_timm:
        parts.append("--no-timm")
    if json_out:
        parts += ["--json", json_out]
    return shlex.join(parts)


def format_header(name_width: int) -> str:
    """The table's column titles, aligned with `format_row`."""
    return f"{'model':<{name_width}}  " + " ".join(f"{label:>{width}}" for label, width in TABLE_COLUMNS)


def format_row(row: dict[str, Any], name_width: int) -> str:
    """One table line: the zoo model's numbers, then timm's median and the zoo/timm ratio with its round range."""
    timm_ms, ratio = "–", "–"
    if row["timm"]:
        low, high = row["zoo_timm_ratio_range"]
        timm_ms, ratio = f"{row['timm']['median_ms']:.2f}", f"{row['zoo_timm_ratio']:.2f} ({low:.2f}–{high:.2f})"
    cells = (row["device"], row["dtype"], "NHWC" if row["channels_last"] else "NCHW", row["batch_size"],
             row["input_size"][-1], f"{row['median_ms']:.2f}", f"{row['p90_ms']:.2f}", f"{row['img_per_s']:.1f}",
             timm_ms, ratio)
    return f"{row['model']:<{name_width}}  " + " ".join(
        f"{cell:>{width}}" for cell, (_, width) in zip(cells, TABLE_COLUMNS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench` command's arguments."""
    parser.add_argument("names", nargs="+", metavar="NAME", help="zoo models, NAME.TAG, or fnmatch patterns "
                                                                 "such as '*_ssld'")
    parser.add_argument("--batch-size", type=int, default=32, help="throughput batch (latency is always batch 1; "
                                                                   "default 32)")
    parser.add_argument("--dtype", nargs="+", default=list(DTYPES), metavar="DTYPE",
                        help="fp32 and/or bf16 (autocast) (default: both)")
    parser.add_argument("--channels-last", nargs="+", default=list(CHANNELS_LAST), metavar="on|off",
                        help="memory formats to time (default: off on)")
    parser.add_argument("--device", nargs="+", metavar="DEVICE",
                        help="cpu and/or cuda (default: cpu, plus cuda when available)")
    parser.add_argument("--input-size", type=int, metavar="PX", help="square input size for every model "
                                                                     "(default: each weight's own)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per model and setting (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating zoo/timm rounds (default 5)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--iters", type=int, help="timed calls per model per round (default 5)")
    budget.add_argument("--seconds", type=float, help="timing budget per model and setting, split over the rounds")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="OUT", help="also write the rows and environment to this JSON file")
    parser.add_argument("--no-timm", action="store_true", help="skip the side-by-side timing of stock timm models")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """`Settings` from parsed `bench` arguments (one clear error for a bad value)."""
    unknown = [v for v in args.channels_last if v not in CHANNELS_LAST]
    if unknown:
        raise SsldZooError(f"--channels-last takes 'on' and/or 'off', not {', '.join(unknown)}.")
    if args.device is None:
        import torch
        devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    else:
        devices = tuple(dict.fromkeys(args.device))
    return Settings(batch_size=args.batch_size, dtypes=tuple(dict.fromkeys(args.dtype)),
                    channels_last=tuple(dict.fromkeys(CHANNELS_LAST[v] for v in args.channels_last)),
                    devices=devices, input_size=args.input_size, warmup=args.warmup, rounds=args.rounds,
                    iters=None if args.seconds is not None else (args.iters if args.iters is not None else 5),
                    seconds=args.seconds, threads=args.threads, compare_timm=not args.no_timm)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark as `args` say: print the table as rows come in, write `--json`, return the result."""
    settings = settings_from_args(args)
    width = max(len("model"), *(len(s.name) for s in resolve_subjects(args.names, settings)))
    printed_header = False

    def show(row: dict[str, Any]) -> None:
        nonlocal printed_header
        if not printed_header:
            print(format_header(width), flush=True)
            printed_header = True
        print(format_row(row, width), flush=True)

    result = benchmark(args.names, settings, on_row=show)
    result["command"] = command_line(args.names, settings, args.json)
    env = result["environment"]
    print(f"torch {env['torch']}, timm {env['timm']}, {env['cuda_device'] or env['cpu']}, {env['threads']} threads; "
          "ms per call (median, p90 over every timed call); zoo/timm: time ratio (range over rounds)")
    if args.json:
        from ssld_zoo.files import write_text_atomic
        out = Path(args.json)
        write_text_atomic(out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return result
