"""An ensemble teacher (akamaster's ResNet-32 + 44 + 56, probabilities averaged) against ResNet-56 alone: as a
teacher (top-1/top-5 on the 10k CIFAR-10 JPEG test images) and as the teacher of the same ResNet-20 student at the
same budget (the demo's label-free SSLD student: 1,000 labeled + 49,000 unlabeled images, no label used).

    SSLD_ZOO_DATA=../shared/data python benchmarks/measure_ensemble_teacher.py            # teachers only
    SSLD_ZOO_DATA=../shared/data python benchmarks/measure_ensemble_teacher.py --train --epochs 2 --out /tmp/ens

The ensemble is the recipe form `teacher: [{model: resnet32_cifar, ...}, {model: resnet44_cifar, ...}, ...]`
(`ssld_zoo.train.networks.TeacherEnsemble`). The images are CIFAR-10 re-encoded as JPEG q75 (YoongiKim).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

TEACHERS = {"resnet56": ["resnet56_cifar"], "ensemble r32+r44+r56": ["resnet32_cifar", "resnet44_cifar",
                                                                     "resnet56_cifar"]}


def teacher_accuracy(names: list[str], data: str | None) -> tuple[float, float, float]:
    """(top-1, top-5, img/s) of the (ensemble) teacher on the 10k test images, BatchNorm in eval mode."""
    from ssld_zoo.data.cifar import load_cifar10
    from ssld_zoo.train.networks import build_teacher, normalized
    from ssld_zoo.train.recipe import ModelSpec
    teacher = normalized(build_teacher([ModelSpec(n, True, bn="eval") for n in names], data)).eval()
    pack = load_cifar10("test", data)
    images = torch.from_numpy(pack.decode_all()).permute(0, 3, 1, 2)
    labels = torch.from_numpy(pack.labels)
    top1 = top5 = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), 500):
            top = teacher(images[i:i + 500].float() / 255).topk(5, dim=-1).indices
            hits = top == labels[i:i + 500, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(-1).sum())
    seconds = time.perf_counter() - start
    return 100 * top1 / len(images), 100 * top5 / len(images), len(images) / seconds


def student_accuracy(names: list[str], args: argparse.Namespace, tag: str) -> tuple[float, float]:
    """(top-1 on the 10k test images, seconds) of the demo's SSLD student distilled from `names`."""
    import ssld_zoo
    from ssld_zoo.data.cifar import load_cifar10
    from ssld_zoo.train.demo import Settings, accuracy, predict, student_recipes
    from ssld_zoo.train.engine import train
    from ssld_zoo.train.recipe import parse_recipe
    settings = Settings(epochs=args.epochs, labeled_only_ssld=False)
    _, recipe, _, _ = student_recipes(settings)[1]
    raw = dict(recipe.raw, name=f"resnet20_cifar.ens_{tag}")
    raw["teacher"] = [{"model": n, "pretrained": True, "bn": "train"} for n in names]
    start = time.perf_counter()
    folder = train(parse_recipe(raw), Path(args.out) / tag, data_root=args.data, device="cpu")
    seconds = time.perf_counter() - start
    pack = load_cifar10("test", args.data)
    student = ssld_zoo.create("resnet20_cifar", pretrained=str(folder))
    return accuracy(predict(student, pack.decode_all()), pack.labels), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data folder (default: $SSLD_ZOO_DATA)")
    parser.add_argument("--train", action="store_true", help="also distil the demo's student from each teacher")
    parser.add_argument("--epochs", type=int, default=1, help="student epochs over the 50k images (default 1)")
    parser.add_argument("--out", default="runs/ensemble", help="run folders of --train (default runs/ensemble)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| teacher | top-1 | top-5 | teacher img/s |" + (" student top-1 | student wall |" if args.train else ""))
    print("|---|---|---|---|" + ("---|---|" if args.train else ""))
    for tag, names in TEACHERS.items():
        top1, top5, rate = teacher_accuracy(names, args.data)
        line = f"| {tag} | {top1:.2f}% | {top5:.2f}% | {rate:.0f} |"
        if args.train:
            student, seconds = student_accuracy(names, args, tag.split()[0])
            line += f" {student:.2f}% | {seconds / 60:.1f} min |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
