"""The image contract of training, evaluation, the soft-label cache and mining: encoded bytes in, a uint8 [0, 255]
CHW tensor of a known `size` out (`ImageTransform`). Normalisation belongs to the model wrapper, not to the pixels.

Two pixel paths, one per job:

- `eval_pixels`, timm's eval rule, pixel for pixel (so `ssld-zoo eval`, training-time evaluation, the cache's
  evaluation and mining agree with `timm.data.create_transform`): full decode; the short side resized to
  `floor(size / crop_pct)` and the long side to `int(long * scale / short)` (truncated, as torchvision's `Resize`),
  with PIL's antialiased filter; a centre crop at `int(round((side - size) / 2))`.
- `decode` + `resize_box`, a training view (RandomResizedCrop box): a JPEG decoded by `torchvision.io.decode_jpeg`
  (libjpeg-turbo, as PIL's decoder: the same pixels, with less overhead; other formats and CMYK JPEGs by PIL), the
  box cropped and resized with torchvision's uint8 antialiased kernel (crop, then resize, as torchvision's
  RandomResizedCrop; about 3x faster than PIL's resize). `benchmarks/bench_input_pipeline.py` measures it against
  the other decoders and against a reduced DCT decode (PIL's `draft`), which on ImageNet-like JPEGs was slower than
  `decode_jpeg`'s full decode (entropy decoding, which no DCT scale skips, dominates) and further from a float
  reference.

A binary PPM (`P6`, 8 bits; what `ssld-zoo pack --raw` stores) is decoded pixels already: `decode` reads it in place,
no copy, about 0.005 ms for a 500x375 image against 0.9 ms for its JPEG. `encode_ppm` writes one.

`PIXELS` names these paths; the soft-label cache records it, so a cache never pairs with pixels it did not see.
"""
from __future__ import annotations

import io
import math
import re
import warnings
from typing import Protocol

import numpy as np
import torch
from PIL import Image

PIXELS = "eval:pil-timm-rule;train:decode_jpeg+torchvision-uint8-antialias"
_PPM_HEADER = re.compile(rb"P6[ \t\r\n]+([1-9][0-9]{0,5})[ \t\r\n]+([1-9][0-9]{0,5})[ \t\r\n]+255[ \t\r\n]")
RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
            "nearest": Image.Resampling.NEAREST}


class ImageTransform(Protocol):
    """What a dataset calls: encoded image bytes (and the sample's augmentation seed, None for evaluation) -> uint8
    (3, size, size) tensor in [0, 255]."""

    size: int

    def __call__(self, data: bytes, seed: int | None) -> torch.Tensor: ...


def open_image(data: bytes) -> Image.Image:
    """The image in `data`, opened lazily: its size and format are known, its pixels not yet decoded."""
    return Image.open(io.BytesIO(data))


def rgb(im: Image.Image) -> Image.Image:
    """`im` decoded, in RGB."""
    im.load()
    return im if im.mode == "RGB" else im.convert("RGB")


def to_tensor(im: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 CHW tensor."""
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def eval_geometry(width: int, height: int, size: int, crop_pct: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """timm's eval geometry for a `width` x `height` image: the resized (width, height), and the (left, top) of the
    `size` x `size` centre crop in it."""
    scale = math.floor(size / crop_pct)
    if width <= height:
        resized = (scale, int(scale * height / width))
    else:
        resized = (int(scale * width / height), scale)
    return resized, (int(round((resized[0] - size) / 2.0)), int(round((resized[1] - size) / 2.0)))


def eval_pixels(im: Image.Image, size: int, crop_pct: float, interpolation: str) -> torch.Tensor:
    """The timm eval view (see the module docstring) of a decoded RGB image."""
    resized, (left, top) = eval_geometry(*im.size, size, crop_pct)
    if resized != im.size:
        im = im.resize(resized, RESAMPLE[interpolation])
    if im.size != (size, size):
        im = im.crop((left, top, left + size, top + size))
    return to_tensor(im)


def to_image(pixels: torch.Tensor) -> Image.Image:
    """A uint8 RGB CHW tensor as a PIL image."""
    return Image.fromarray(pixels.permute(1, 2, 0).numpy())


def decode(data: bytes) -> torch.Tensor:
    """The encoded image `data` as a uint8 RGB CHW tensor (channels-last in memory, as torchvision's resize kernel
    wants it): colour and greyscale JPEGs by `torchvision.io.decode_jpeg`, anything else (CMYK JPEGs included) by
    PIL. Raises an OSError-like exception when it cannot be decoded, and PIL's `DecompressionBombError` for a header
    that claims more pixels than PIL would decode (checked before any pixel is allocated). A binary PPM is read in
    place (read-only)."""
    pixels = _read_ppm(data)
    if pixels is not None:
        return pixels
    im = open_image(data)
    pixels = _decode_jpeg(data) if im.format == "JPEG" else None
    if pixels is not None and pixels.shape[0] == 3:
        return pixels
    if pixels is not None and pixels.shape[0] == 1:
        return pixels.expand(3, -1, -1)
    with warnings.catch_warnings():  # read-only: the pixels are only read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(rgb(im))).permute(2, 0, 1)


def _read_ppm(data: bytes) -> torch.Tensor | None:
    """The pixels of `data` when it is a plain 8-bit binary PPM with nothing after its pixels, as a read-only view of
    `data`; None for anything else (comments in the header, 16 bits, trailing bytes, more pixels than PIL allows
    without a warning), which PIL then decodes or refuses."""
    header = _PPM_HEADER.match(data)
    if header is None:
        return None
    width, height = int(header[1]), int(header[2])
    if width * height > (Image.MAX_IMAGE_PIXELS or math.inf) or len(data) - header.end() != 3 * width * height:
        return None
    with warnings.catch_warnings():  # `data` is read-only, and so are these pixels: every transform makes new ones
        warnings.simplefilter("ignore", UserWarning)
        pixels = torch.frombuffer(data, dtype=torch.uint8, offset=header.end(), count=3 * width * height)
    return pixels.view(height, width, 3).permute(2, 0, 1)


def encode_ppm(pixels: torch.Tensor) -> bytes:
    """A uint8 RGB CHW tensor as a binary PPM (`P6`), which `decode` reads back in place, pixel for pixel."""
    channels, height, width = pixels.shape
    if channels != 3 or pixels.dtype != torch.uint8:
        raise ValueError(f"a PPM holds uint8 RGB pixels, not {channels} channels of {pixels.dtype}")
    return f"P6\n{width} {height}\n255\n".encode("ascii") + pixels.permute(1, 2, 0).contiguous().numpy().tobytes()


def _decode_jpeg(data: bytes) -> torch.Tensor | None:
    """A JPEG's channels as stored (RGB from YCbCr, grey, or CMYK) by torchvision: libjpeg-turbo, as PIL's decoder,
    so the same pixels with less overhead. An undecodable one raises OSError, as PIL would. None when this torchvision
    has no `decode_jpeg` (deprecated from 0.29 in favour of TorchCodec): PIL decodes it then."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():  # torchvision >= 0.29 points at TorchCodec; the kernel is the same
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    except RuntimeError as e:
        raise OSError(f"cannot decode the JPEG: {e}") from e


def resize_box(pixels: torch.Tensor, box: tuple[int, int, int, int], size: int, interpolation: str) -> torch.Tensor:
    """Box (x, y, w, h) of a uint8 CHW tensor, resized to `size` x `size` with torchvision's antialiased kernel."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2.functional import resized_crop
    x, y, w, h = box
    if (x, y, w, h) == (0, 0, size, size) == (0, 0, pixels.shape[2], pixels.shape[1]):
        return pixels.clone(memory_format=torch.contiguous_format)
    return resized_crop(pixels, y, x, h, w, [size, size], InterpolationMode(interpolation),
                        antialias=True).contiguous()
