"""The `predict` command: a zoo model's top-k classes for image files."""
from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Callable

from ssld_zoo.errors import DataError, SsldZooError

if TYPE_CHECKING:
    from PIL import Image


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `predict`."""
    p = sub.add_parser("predict", help="top-k ImageNet classes for images")
    p.add_argument("name")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--weights", help="a .safetensors file, Hub-layout folder or hf-hub:org/name (default: catalogue)")
    p.add_argument("--top", type=_positive_int, default=5, help="classes to print per image (default 5)")
    p.add_argument("--cache-dir", help="Hub cache folder (default: HF_HUB_CACHE)")
    p.set_defaults(func=_cmd_predict)


def _positive_int(text: str) -> int:
    """`--top`'s type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _read_image(path: str) -> Image.Image:
    """The image at `path` as RGB; a missing or unreadable file is an `SsldZooError`."""
    from PIL import Image, UnidentifiedImageError
    from ssld_zoo.reading import open_regular
    if not os.path.lexists(path):
        raise DataError(f"image '{path}' does not exist", path=path)
    try:
        with open_regular(path, what="image", error=DataError) as f, Image.open(f) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image '{path}': {e}", path=path) from e


def _cmd_predict(args: argparse.Namespace) -> None:
    """Print each image's top-k classes with their probabilities."""
    import torch
    from ssld_zoo.models.factory import create
    from ssld_zoo.data.transforms import get_transform
    from ssld_zoo.train.networks import num_classes
    images = [_read_image(p) for p in args.images]
    model = create(args.name, pretrained=args.weights or True, cache_dir=args.cache_dir).eval()
    transform = get_transform(model)
    names = _class_names(args.name, num_classes(model))
    with torch.inference_mode():
        probs = model(torch.stack([transform(im) for im in images])).softmax(-1)
    for path, p in zip(args.images, probs):
        print(path)
        values, indices = p.topk(min(args.top, p.numel()))
        for value, index in zip(values.tolist(), indices.tolist()):
            print(f"  {value:6.2%}  {names(index)}")


def _class_names(name: str, num_classes: int) -> Callable[[int], str]:
    """Class index -> name for the dataset the catalogue says the weights were trained on (ImageNet-1k, CIFAR-10)."""
    from ssld_zoo.catalogue.registry import get_weight_entry
    try:
        weight = get_weight_entry(name)
        trained_on = " ".join(str(weight.data.get(k) or "") for k in ("training_data", "summary"))
    except SsldZooError:
        trained_on = ""
    if num_classes == 10 and "CIFAR-10" in trained_on:
        from ssld_zoo.data.cifar import CLASSES
        return lambda index: CLASSES[index]
    if num_classes == 1000:
        from timm.data import ImageNetInfo
        info = ImageNetInfo()
        return info.index_to_description
    return lambda index: f"class {index}"
