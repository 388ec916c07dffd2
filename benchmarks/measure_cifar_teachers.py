"""Top-1/top-5 of the CIFAR-10 teachers on the 10k test images, with each weight's own preprocessing.

    SSLD_ZOO_DATA=../shared/data python benchmarks/measure_cifar_teachers.py [--data DIR] [NAME ...]

Prints one line per model (accuracy, wall time) and the catalogue `metrics.measured` block to paste into
`ssld_zoo/catalogue.json`. The images are CIFAR-10 re-encoded as JPEG q75 (YoongiKim), not the original pixels.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import ssld_zoo
from ssld_zoo.data.cifar import load_cifar10
from ssld_zoo.catalogue.registry import get_weight_entry

DATASET = "cifar10-jpeg-q75-test"
TEACHERS = ("resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar")


def measure(name: str, data: str | None, batch_size: int) -> dict:
    """The catalogue `measured` block of `name`'s default weight on the CIFAR-10 test split."""
    pack = load_cifar10("test", data)
    model = ssld_zoo.create(name, pretrained=True, data_root=data).eval()
    transform = ssld_zoo.get_transform(name)
    labels = torch.from_numpy(pack.labels)
    top1 = top5 = 0
    with torch.inference_mode():
        for start in range(0, len(pack), batch_size):
            idx = range(start, min(start + batch_size, len(pack)))
            logits = model(torch.stack([transform(pack.image(i)) for i in idx]))
            hits = logits.topk(5, dim=1).indices == labels[idx.start:idx.stop, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(dim=1).sum())
    pre = get_weight_entry(name).preprocessing
    return {"dataset": DATASET, "top1": round(100 * top1 / len(pack), 2), "top5": round(100 * top5 / len(pack), 2),
            "input_size": pre["input_size"][1], "crop_pct": pre["crop_pct"], "interpolation": pre["interpolation"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=TEACHERS, metavar="NAME")
    parser.add_argument("--data", help="data folder (default: $SSLD_ZOO_DATA)")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    measured = {}
    for name in args.names:
        start = time.perf_counter()
        measured[name] = measure(name, args.data, args.batch_size)
        print(f"{name}: top-1 {measured[name]['top1']:.2f}%, top-5 {measured[name]['top5']:.2f}% "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    print(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
