"""How far timm's default eval transform is from PaddleClas's exact one, in pixels and in predictions.

Real images: CIFAR-10 test images (from `$SSLD_ZOO_DATA`) upscaled with PIL bicubic to 500x375 (the most common
ImageNet size) and re-encoded as JPEG (quality 90), so both pipelines start from the same file. For each PaddleClas
eval setting it prints the mean and largest
|Δ| per pixel (0-255 units, after undoing the normalisation) between `get_transform(name)` (timm: PIL decode,
antialiased resize) and `get_transform(name, exact=True)` (PaddleClas: OpenCV decode, cv2/PIL resize), on smooth
(bicubic-upscaled) and sharp-edged (nearest-upscaled) versions of the same images. Then a real
model, akamaster's ResNet-56 (`resnet56_cifar.akamaster_cifar10`), classifies the upscaled images under both
pipelines at its 32 px input (resize short side to 36, crop 32: the 256/224 ratio): top-1 of each, how often the
two top-1 predictions agree, and its top-1 on the original 32x32 images for reference.

    SSLD_ZOO_DATA=/path/to/data python benchmarks/measure_preprocess.py [--images 2000] [--size 500x375]
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

import ssld_zoo
from ssld_zoo.data.cifar import load_cifar10
from ssld_zoo.data.paddle_preprocess import PaddleEvalTransform

SETTINGS = [("resnet50d_ssld", "ImageNet default: cv2 bilinear 256 -> 224"),
            ("hgnetv2_b0_ssld", "PP-HGNet(V2): PIL bicubic 232 -> 224"),
            ("resnet50d_ssld.fix_ssld_v2_in1k", "Fix-ResNet50: cv2 bilinear 320 -> 320")]


def upscaled_jpegs(count: int, size: tuple[int, int],
                   resample: int = Image.BICUBIC) -> tuple[list[bytes], np.ndarray, list[Image.Image]]:
    pack = load_cifar10("test")
    order = np.concatenate([np.flatnonzero(pack.labels == c)[:count // 10] for c in range(10)])
    files, originals = [], []
    for i in order:
        originals.append(pack.image(int(i)))
        image = originals[-1].resize(size, resample)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        files.append(buffer.getvalue())
    return files, pack.labels[order], originals


def pixel_gap(files: list[bytes], timm_transform, exact: PaddleEvalTransform, std: torch.Tensor) -> tuple[float, float]:
    total, largest, pixels = 0.0, 0.0, 0
    for data in files:
        with Image.open(io.BytesIO(data)) as im:
            ours = timm_transform(im.convert("RGB"))
        gap = (ours - exact(data)).abs() * std * 255
        total, largest, pixels = total + float(gap.sum()), max(largest, float(gap.max())), pixels + gap.numel()
    return total / pixels, largest


def predictions(model: torch.nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(batch).argmax(-1) for batch in batches])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="CIFAR-10 test images, the same number per class")
    parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the upscaled files (default 500x375)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    width, height = (int(v) for v in args.size.split("x"))
    files, labels, originals = upscaled_jpegs(args.images, (width, height))
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    print(f"{len(files)} CIFAR-10 test images upscaled to {width}x{height} (PIL bicubic), JPEG quality 90")
    sharp, _, _ = upscaled_jpegs(args.images, (width, height), Image.NEAREST)
    print("| PaddleClas eval setting | smooth: mean / max abs diff (0-255) | sharp-edged: mean / max |\n"
          "|---|---|---|")
    for name, label in SETTINGS:
        timm_transform, exact = ssld_zoo.get_transform(name), ssld_zoo.get_transform(name, exact=True)
        smooth_gap = pixel_gap(files, timm_transform, exact, std)
        sharp_gap = pixel_gap(sharp, timm_transform, exact, std)
        print(f"| {label} (`{name}`) | {smooth_gap[0]:.2f} / {smooth_gap[1]:.0f} | {sharp_gap[0]:.2f} / "
              f"{sharp_gap[1]:.0f} |")
    print("(smooth: bicubic upscaling; sharp-edged: the same images upscaled with nearest neighbour)")

    model = ssld_zoo.create("resnet56_cifar.akamaster_cifar10", pretrained=True).eval()
    exact = PaddleEvalTransform(resize_short=36, crop_size=32, mean=model.pretrained_cfg["mean"],
                                std=model.pretrained_cfg["std"])
    from timm.data import create_transform
    timm_transform = create_transform(input_size=(3, 32, 32), crop_pct=32 / 36, interpolation="bilinear",
                                      mean=model.pretrained_cfg["mean"], std=model.pretrained_cfg["std"])
    timm_inputs, exact_inputs = [], []
    for data in files:
        with Image.open(io.BytesIO(data)) as im:
            timm_inputs.append(timm_transform(im.convert("RGB")))
        exact_inputs.append(exact(data))
    chunk = 250
    timm_pred = predictions(model, [torch.stack(timm_inputs[i:i + chunk]) for i in range(0, len(files), chunk)])
    exact_pred = predictions(model, [torch.stack(exact_inputs[i:i + chunk]) for i in range(0, len(files), chunk)])
    truth = torch.from_numpy(labels)
    native_transform = create_transform(input_size=(3, 32, 32), crop_pct=1.0, mean=model.pretrained_cfg["mean"],
                                        std=model.pretrained_cfg["std"])
    native = [native_transform(im) for im in originals]
    native_pred = predictions(model, [torch.stack(native[i:i + chunk]) for i in range(0, len(files), chunk)])
    print("\nresnet56_cifar.akamaster_cifar10 on the upscaled images (resize short side to 36, crop 32):")
    print(f"  top-1 with timm's transform:      {100 * float((timm_pred == truth).float().mean()):.2f}%")
    print(f"  top-1 with the exact transform:   {100 * float((exact_pred == truth).float().mean()):.2f}%")
    print(f"  top-1 predictions that agree:     {100 * float((timm_pred == exact_pred).float().mean()):.2f}%")
    print(f"  (top-1 on the original 32x32 images: {100 * float((native_pred == truth).float().mean()):.2f}%)")
    print(f"  ({time.perf_counter() - start:.0f} s, torch {torch.__version__}, 2 threads)")


if __name__ == "__main__":
    main()
