"""Images per second per CPU core of the training transform on ImageNet-like JPEGs, stage by stage and backend by
backend, side by side in one run; and the cores per GPU that the SSLD students need.

The images are made from real photos that registry packages ship: matplotlib's `sample_data/grace_hopper.jpg`, and
scikit-image's bundled colour photos when scikit-image is installed (astronaut, chelsea, coffee, rocket, motorcycle,
Hubble deep field, retina). Each is a random crop of one photo resized to an ImageNet-like size (LANCZOS), or a
mosaic of photo crops at their own scale when it is larger than the photos, with camera-like grain added (Gaussian,
sigma 10 shared by the channels plus 5 per channel: the bundled photos are smoother than ImageNet's, whose JPEGs
average about 110 KB), saved as a JPEG at quality 90 into a temporary folder. Sizes follow ImageNet's train set:
about half at 500 px on the long side (500x375, 500x333, 500x500 and portrait), most of the rest smaller (long side
120-480 px), and 5% large (long side 1000-2000 px, most above 1 MP). The script prints the set's mean size, bytes
and share above 1 MP.

Each path turns the JPEG bytes into the recipe's training view (RandomResizedCrop to 224, scale 0.08-1, bilinear,
horizontal flip; the view drawn by `ssld_zoo.train.data.Transform.draw` from the same seed for every path):

    today        PIL full decode, PIL resize of the box, PIL flip, to a uint8 tensor (the pipeline before this one)
    pil+tv       PIL full decode, torchvision's uint8 antialiased resized_crop, tensor flip
    tvjpeg+tv    torchvision.io.decode_jpeg on the CPU, torchvision's uint8 resized_crop, tensor flip
    cv2          OpenCV decode (BGR -> RGB), crop, cv2.resize INTER_AREA, flip
    draft+pil    PIL reduced DCT decode (`draft`: 1/2, 1/4 or 1/8 scale where the box still holds 224 px in both
                 directions at that scale), PIL resize of the box mapped onto it, PIL flip
    draft+tv     the same reduced decode, torchvision's uint8 resized_crop, tensor flip
    default      what `ssld_zoo.train.data.Transform` does (`ssld_zoo.data.pixels.decode` + `resize_box`):
                 PIL's header check (size, format), `decode_jpeg`, torchvision's uint8 resized_crop, tensor flip

It also times each stage (decode, crop-resize, flip, to-tensor) of `today` and `default` on their own, and how far
each path's pixels are from a float reference (full decode, crop, float64 antialiased bilinear resize). Rounds are
interleaved and the median round is reported; one thread, one process (img/s per core).

    python benchmarks/bench_input_pipeline.py [--images 200] [--rounds 7] [--shards]
"""
from __future__ import annotations

import argparse
import io
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ssld_zoo.data.pixels import decode, open_image, resize_box, rgb, to_tensor
from ssld_zoo.train.data import Transform
from ssld_zoo.train.recipe import Augment

SIZE = 224
AUGMENT = Augment(random_resized_crop=(0.08, 1.0), hflip=True)
# step rates on one H100 (bf16, channels_last, batch 256-512), from the input-pipeline issue
STUDENTS = [("MobileNetV3-large <- ResNet50-D", 8200, 4800), ("ResNet50-D <- ResNeXt101-32x16d", 3300, 1600)]
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "retina.jpg")


def photos() -> list[Image.Image]:
    """The real photos to cut the set from."""
    from matplotlib import cbook
    found = [Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")]
    try:
        import skimage
    except ImportError:
        print("scikit-image is not installed: the set is cut from grace_hopper.jpg alone")
        return found
    folder = Path(skimage.__file__).parent / "data"
    return found + [Image.open(folder / name).convert("RGB") for name in SKIMAGE_PHOTOS if (folder / name).is_file()]


def imagenet_size(rng: random.Random) -> tuple[int, int]:
    """A (width, height) drawn like ImageNet's train images."""
    kind = rng.random()
    if kind < 0.55:
        long, aspect = 500, rng.choice((4 / 3, 3 / 2, 1.0, 4 / 3, 4 / 3))
    elif kind < 0.95:
        long, aspect = rng.randint(120, 480), rng.choice((4 / 3, 3 / 2, 1.0, 5 / 4))
    else:
        long, aspect = rng.randint(1000, 2000), rng.choice((4 / 3, 3 / 2))
    short = round(long / aspect)
    return (long, short) if rng.random() < 0.75 else (short, long)


def cut(photo: Image.Image, width: int, height: int, rng: random.Random) -> Image.Image:
    """A random crop of `photo` with the aspect of width x height, resized to it."""
    pw, ph = photo.size
    scale = rng.uniform(0.6, 1.0) * min(pw / width, ph / height)
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    x, y = rng.randint(0, pw - cw), rng.randint(0, ph - ch)
    return photo.resize((width, height), Image.Resampling.LANCZOS, box=(x, y, x + cw, y + ch))


def realistic_image(sources: list[Image.Image], width: int, height: int, rng: random.Random) -> Image.Image:
    """One photo crop, or a mosaic of photo crops at about their own scale when the image is larger than them."""
    cols, rows = math.ceil(width / 500), math.ceil(height / 500)
    if cols * rows == 1:
        return cut(rng.choice(sources), width, height, rng)
    canvas = Image.new("RGB", (width, height))
    for col in range(cols):
        for row in range(rows):
            left, top = col * width // cols, row * height // rows
            right, bottom = (col + 1) * width // cols, (row + 1) * height // rows
            canvas.paste(cut(rng.choice(sources), right - left, bottom - top, rng), (left, top))
    return canvas


def grainy(im: Image.Image, noise: np.random.Generator, sigma: float = 10.0) -> Image.Image:
    """`im` with camera-like grain: Gaussian noise of `sigma` shared by the channels plus `sigma / 2` per channel."""
    pixels = np.asarray(im).astype(np.float32)
    pixels += noise.normal(0, sigma, pixels.shape[:2] + (1,)) + noise.normal(0, sigma / 2, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_set(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` ImageNet-like JPEGs (quality 90) in `folder`."""
    rng, noise, sources, paths = random.Random(seed), np.random.default_rng(seed), photos(), []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        grainy(realistic_image(sources, *imagenet_size(rng), rng), noise).save(path, quality=90)
        paths.append(path)
    return paths


def describe(files: list[bytes]) -> str:
    sizes = np.array([open_image(data).size for data in files], dtype=np.float64)
    pixels = sizes.prod(1)
    return (f"{len(files)} JPEGs, quality 90: mean {sizes[:, 0].mean():.0f}x{sizes[:, 1].mean():.0f} px, median "
            f"{np.median(pixels) / 1e6:.3f} MP, {100 * (pixels > 1e6).mean():.1f}% above 1 MP (largest "
            f"{pixels.max() / 1e6:.2f} MP), mean {np.mean([len(f) for f in files]) / 1e3:.0f} KB")


# -- the paths ------------------------------------------------------------------------------------------------------
Path_ = Callable[[bytes, tuple[int, int, int, int], bool], torch.Tensor]


def today(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
    x, y, w, h = box
    im = im.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
    return to_tensor(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else im)


def _tv_resized_crop(pixels: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    from torchvision.transforms.v2.functional import resized_crop
    x, y, w, h = box
    return resized_crop(pixels, y, x, h, w, [SIZE, SIZE], antialias=True).contiguous()


def pil_tv(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    im = rgb(open_image(data))
    out = _tv_resized_crop(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), box)
    return out.flip(-1) if flip else out


def tvjpeg_tv(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg
    pixels = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    out = _tv_resized_crop(pixels, box)
    return out.flip(-1) if flip else out


def opencv(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    import cv2
    x, y, w, h = box
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[y:y + h, x:x + w, ::-1]
    out = cv2.resize(np.ascontiguousarray(pixels), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    if flip:
        out = out[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).contiguous()


def reduction(box_width: int, box_height: int) -> int:
    """The largest DCT scale (8, 4, 2; else 1) at which a box still holds SIZE pixels in both directions."""
    return next((r for r in (8, 4, 2) if min(box_width, box_height) >= r * SIZE), 1)


def draft_decode(data: bytes, box: tuple[int, int, int, int]) -> tuple[Image.Image, tuple[float, ...]]:
    """The image decoded at the smallest DCT scale the box allows, and the box (x0, y0, x1, y1) in its pixels."""
    im = open_image(data)
    width, height = im.size
    x, y, w, h = box
    r = reduction(w, h)
    if r > 1:
        im.draft("RGB", (width // r, height // r))
    im = rgb(im)
    fx, fy = im.size[0] / width, im.size[1] / height
    return im, (x * fx, y * fy, (x + w) * fx, (y + h) * fy)


def draft_pil(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    im, scaled = draft_decode(data, box)
    im = im.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=scaled)
    return to_tensor(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else im)


def draft_tv(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    im, (x0, y0, x1, y1) = draft_decode(data, box)
    left, top = round(x0), round(y0)
    out = _tv_resized_crop(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1),
                           (left, top, round(x1) - left, round(y1) - top))
    return out.flip(-1) if flip else out


def default(data: bytes, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
    out = resize_box(decode(data), box, SIZE, "bilinear")
    return out.flip(-1) if flip else out


PATHS: dict[str, Path_] = {"today": today, "pil+tv": pil_tv, "tvjpeg+tv": tvjpeg_tv, "cv2": opencv,
                           "draft+pil": draft_pil, "draft+tv": draft_tv,
                           "default": default}


def views(files: list[bytes]) -> list[tuple[tuple[int, int, int, int], bool]]:
    """The seeded training view (box, flip) of every image, as `Transform` draws it."""
    transform = Transform(SIZE, AUGMENT, train=True)
    out = []
    for i, data in enumerate(files):
        view = transform.draw(*open_image(data).size, seed=i)
        assert view.box is not None
        out.append((view.box, view.flip))
    return out


def rate(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def transform_rates(files: list[bytes], drawn: list, rounds: int) -> dict[str, float]:
    """Median img/s of each path over interleaved rounds (the Transform itself included, as training calls it)."""
    transform = Transform(SIZE, AUGMENT, train=True)
    paths: dict[str, Callable[[], object]] = {
        name: (lambda fn=fn: [fn(data, box, flip) for data, (box, flip) in zip(files, drawn)])
        for name, fn in PATHS.items()}
    paths["Transform (shipped)"] = lambda: [transform(data, i) for i, data in enumerate(files)]
    results: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, run in paths.items():
            results[name].append(rate(run, len(files)))
    return {name: statistics.median(r) for name, r in results.items()}


def stage_rates(files: list[bytes], drawn: list, rounds: int) -> dict[str, dict[str, float]]:
    """Median img/s of each stage of `today` and `default`, each stage timed on its own inputs."""
    decoded = [rgb(open_image(d)) for d in files]
    boxes = [box for box, _ in drawn]
    pil_views = [im.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
                 for im, (x, y, w, h) in zip(decoded, boxes)]
    tensors_in = [decode(d) for d in files]
    tensors = [to_tensor(v) for v in pil_views]
    stages: dict[str, dict[str, Callable[[], object]]] = {
        "today": {
            "decode": lambda: [rgb(open_image(d)) for d in files],
            "crop-resize": lambda: [im.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
                                    for im, (x, y, w, h) in zip(decoded, boxes)],
            "flip": lambda: [v.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for v in pil_views],
            "to-tensor": lambda: [to_tensor(v) for v in pil_views]},
        "default": {  # decode hands the resize a tensor: no to-tensor stage
            "decode": lambda: [decode(d) for d in files],
            "crop-resize": lambda: [resize_box(pixels, box, SIZE, "bilinear")
                                    for pixels, box in zip(tensors_in, boxes)],
            "flip": lambda: [t.flip(-1) for t in tensors]}}
    results: dict[str, dict[str, list[float]]] = {path: {stage: [] for stage in s} for path, s in stages.items()}
    for _ in range(rounds):
        for path, s in stages.items():
            for stage, run in s.items():
                results[path][stage].append(rate(run, len(files)))
    return {path: {stage: statistics.median(r) for stage, r in s.items()} for path, s in results.items()}


def fidelity(files: list[bytes], drawn: list, limit: int = 60) -> dict[str, float]:
    """Mean |difference| (0-255) of each path's pixels from a float reference: full decode, crop, float64
    antialiased bilinear resize."""
    gaps: dict[str, list[float]] = {name: [] for name in PATHS}
    for data, (box, flip) in list(zip(files, drawn))[:limit]:
        x, y, w, h = box
        crop = torch.from_numpy(np.asarray(rgb(open_image(data)))[y:y + h, x:x + w].astype(np.float64))
        reference = torch.nn.functional.interpolate(crop.permute(2, 0, 1)[None], size=(SIZE, SIZE), mode="bilinear",
                                                    antialias=True, align_corners=False)[0]
        reference = reference.flip(-1) if flip else reference
        for name, fn in PATHS.items():
            gaps[name].append(float((fn(data, box, flip).double() - reference).abs().mean()))
    return {name: float(np.mean(g)) for name, g in gaps.items()}


def source_rates(folder: Path, rounds: int, sides: tuple[int, ...]) -> dict[str, tuple[float, float]]:
    """Median img/s of `Transform` fed by each source (file reads included): the raw folder, and `ssld-zoo pack`
    shards of it as stored, as decoded pixels (`--raw`) and pre-resized to each max side; and of today's path on
    the raw folder, in the same interleaved rounds; with the mean stored KB per image."""
    from ssld_zoo.tools.pack import pack
    from ssld_zoo.train.data import open_source
    from ssld_zoo.train.recipe import DataSource
    sources = {"raw folder": f"folder:{folder}"}
    for raw, side in ((False, None), (True, None), *((False, side) for side in sides)):
        name = "shards" + (" --raw" if raw else "") + (f" --max-side {side}" if side else "")
        out = folder.parent / name.replace(" ", "_")
        pack(f"folder:{folder}", out, raw=raw, max_side=side)
        sources[name] = f"shards:{out}"
    opened = {name: open_source(DataSource(location)) for name, location in sources.items()}
    transform = Transform(SIZE, AUGMENT, train=True)
    folder_images, raw_images = opened["raw folder"], opened["shards --raw"]
    assert all(torch.equal(transform(folder_images.encoded(i), i), transform(raw_images.encoded(i), i))
               for i in range(len(folder_images))), "--raw shards must train on the raw folder's pixels"

    def today_transform(data: bytes, seed: int) -> torch.Tensor:
        view = transform.draw(*open_image(data).size, seed)
        assert view.box is not None
        return today(data, view.box, view.flip)

    runs = {f"{name}, {path}": (images, fn) for name, images in opened.items()
            for path, fn in (("today", today_transform), ("default", transform))
            if path == "default" or name == "raw folder"}
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (images, fn) in runs.items():
            results[name].append(rate(lambda images=images, fn=fn: [fn(images.encoded(i), i)
                                                                    for i in range(len(images))], len(images)))
    return {name: (statistics.median(results[name]),
                   float(np.mean([len(images.encoded(i)) for i in range(len(images))])) / 1e3)
            for name, (images, _) in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--max-sides", type=int, nargs="*", default=[320, 256],
                        help="pre-resized shard sizes to measure (`ssld-zoo pack --max-side`)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import cv2
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="ssld_zoo_bench_") as tmp:
        (Path(tmp) / "raw").mkdir()
        files = [p.read_bytes() for p in make_set(Path(tmp) / "raw", args.images)]
        print(describe(files))
        print(f"RandomResizedCrop(224, scale 0.08-1) + flip; one thread (torch {torch.__version__}, "
              f"Pillow {Image.__version__}, OpenCV {cv2.__version__}, {os.cpu_count()} CPUs); median of "
              f"{args.rounds} interleaved rounds\n")
        drawn = views(files)
        rates = transform_rates(files, drawn, args.rounds)
        gaps = fidelity(files, drawn)
        base = rates["today"]
        print(f"{'path':<22}{'img/s/core':>11}{'vs today':>10}{'mean |px - float ref|':>24}")
        for name, value in rates.items():
            gap = f"{gaps[name]:.3f}" if name in gaps else ""
            print(f"{name:<22}{value:>11.0f}{value / base:>9.2f}x{gap:>24}")
        print("\nstage by stage (img/s/core of that stage alone; ms per image)")
        for path, stages in stage_rates(files, drawn, args.rounds).items():
            print(f"  {path:<9}" + "  ".join(f"{stage} {r:,.0f} ({1e3 / r:.2f} ms)" for stage, r in stages.items()))
        print("\nfed by each source, file reads included (the --raw shards' views checked equal to the raw folder's)")
        by_source = source_rates(Path(tmp) / "raw", args.rounds, tuple(args.max_sides))
        raw = by_source["raw folder, today"][0]
        print(f"{'source, path':<36}{'img/s/core':>11}{'vs today':>10}{'KB/image':>10}")
        for name, (value, kb) in by_source.items():
            print(f"{name:<36}{value:>11.0f}{value / raw:>9.2f}x{kb:>10.1f}")
    print("\ncores per GPU to feed one H100 (step rates from the issue; img/s per core from the runs above)")
    columns = {"today": base, "default": rates["Transform (shipped)"]}
    shown = {"shards --raw, default": "raw shards", **{f"shards --max-side {side}, default": f"shards/{side}"
                                                       for side in args.max_sides}}
    columns.update({shown[name]: value for name, (value, _) in by_source.items() if name in shown})
    print(f"{'student <- teacher':<42}{'step':>6}" + "".join(f"{n:>12}" for n in columns))
    for student, cached, online in STUDENTS:
        for kind, step in (("cached", cached), ("online", online)):
            cells = "".join(f"{math.ceil(step / value):>12}" for value in columns.values())
            print(f"{student + ' (' + kind + ')':<42}{step:>6}{cells}")


if __name__ == "__main__":
    main()
