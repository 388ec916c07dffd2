"""Load time: `ssld_zoo.create(name, pretrained=<cached weights>)` against `timm.create_model` + `load_file`.

The zoo path does everything a user gets: Hub cache lookup through huggingface_hub (pinned commit, no network),
sha256 of the file (checked before the model is built, by `weights.resolve`), then timm's own loading. Weights are
random (same bytes for both paths), served once by the loopback Hub from tests/hubserver.py so that the zoo path is a
real cache hit.

    python benchmarks/bench_create.py [--rounds 7] [NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
_tmp = tempfile.mkdtemp(prefix="ssld_zoo_bench_")
os.environ["HF_HOME"] = _tmp
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
from hubserver import FakeHub  # noqa: E402

HUB = FakeHub()
os.environ["HF_ENDPOINT"] = HUB.endpoint

import timm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import ssld_zoo  # noqa: E402
from ssld_zoo.catalogue import registry  # noqa: E402
from ssld_zoo.weights import hub  # noqa: E402
from ssld_zoo.weights.layout import download_folder  # noqa: E402


def publish(names: list[str]) -> None:
    """Publish random weights for `names` on the loopback Hub and pin them in an extra catalogue."""
    doc = json.loads(registry.BUILTIN_CATALOGUE.read_text())
    models = {}
    for name in names:
        path = Path(_tmp) / f"{name}.safetensors"
        save_file(timm.create_model(name).state_dict(), str(path))
        data = path.read_bytes()
        entry = doc["models"][name]
        weight = entry["weights"][entry["default_weight"]]
        commit = HUB.publish(weight["hub"]["repo_id"], {"model.safetensors": data})
        weight["hub"].update(revision=commit, sha256=hub.file_sha256(path), size=len(data))
        weight["status"] = "published"
        models[name] = entry
    extra = Path(_tmp) / "catalogue.json"
    extra.write_text(json.dumps({"schema_version": 1, "models": models}))
    registry.add_catalogue(extra)


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench(name: str, rounds: int) -> None:
    entry = registry.get_model_entry(name)
    cached = hub.hub_download(entry.weight().hub)
    folder = download_folder(name, Path(_tmp) / "folders")

    def baseline() -> None:
        timm.create_model(entry.architecture, **entry.model_args).load_state_dict(load_file(str(cached)))

    paths = {"timm.create_model + load_file": baseline,
             "ssld_zoo.create(pretrained=True), Hub cache hit": lambda: ssld_zoo.create(name, pretrained=True),
             "ssld_zoo.create(pretrained=DIR), Hub-layout folder": lambda: ssld_zoo.create(name, pretrained=folder)}
    for fn in paths.values():
        fn()  # warm-up: page cache, lazy imports
    results = {label: [] for label in paths}
    for _ in range(rounds):  # interleave so that machine noise hits every path alike
        for label, fn in paths.items():
            results[label].append(median_ms(fn, 1))
    base = statistics.median(results["timm.create_model + load_file"])
    size_mb = cached.stat().st_size / 1e6
    print(f"\n{name}  ({size_mb:.1f} MB safetensors, {rounds} interleaved rounds, median)")
    for label, values in results.items():
        ms = statistics.median(values)
        print(f"  {label:<52} {ms:8.1f} ms  {1e3 / ms:6.2f} models/s  ratio {ms / base:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["mobilenetv3_large_ssld", "resnet50d_ssld"])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    publish(args.names)
    print(f"torch {torch.__version__}, timm {timm.__version__}, {os.cpu_count()} CPUs, "
          f"threads {torch.get_num_threads()}")
    for name in args.names:
        bench(name, args.rounds)
    HUB.stop()


if __name__ == "__main__":
    main()
