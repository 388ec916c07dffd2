"""The image contract (`ssld_zoo.data.pixels`): one eval rule for training-time evaluation, `ssld-zoo eval` and timm;
the training view's decode and resize against the PIL path it replaced; undecodable bytes; the cache's record."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from ssld_zoo.data.pixels import PIXELS, decode, encode_ppm, eval_geometry, open_image, resize_box, rgb
from ssld_zoo.tools.evaluate import eval_transform
from ssld_zoo.train.data import DECODE_ERRORS, Transform
from ssld_zoo.train.recipe import Augment

ODD_SIZES = [(37, 53), (53, 37), (101, 67), (67, 101), (129, 97), (33, 33), (250, 31)]


def photo(width: int, height: int) -> Image.Image:
    """A crop of a real photo (matplotlib's Grace Hopper), resized to width x height."""
    from matplotlib import cbook
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return im.convert("RGB").resize((width, height), Image.Resampling.BICUBIC, box=(60, 90, 460, 510))


def encoded(im: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.mark.parametrize("crop_pct,interpolation", [(0.875, "bilinear"), (0.95, "bicubic"), (1.0, "bilinear")])
def test_training_eval_ssld_zoo_eval_and_timm_see_the_same_pixels(crop_pct: float, interpolation: str):
    """On odd image sizes: the training pipeline's eval transform, `ssld-zoo eval`'s, and timm's create_transform
    (un-normalised) give identical pixels."""
    from timm.data import create_transform
    size = 24
    config = {"input_size": (3, size, size), "interpolation": interpolation, "crop_pct": crop_pct,
              "crop_mode": "center", "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}
    training = Transform(size, Augment(interpolation=interpolation, eval_crop_pct=crop_pct), train=False)
    evaluating = eval_transform(config)
    timm_transform = create_transform(**config, is_training=False)
    mean, std = torch.tensor(config["mean"]).view(3, 1, 1), torch.tensor(config["std"]).view(3, 1, 1)
    for width, height in ODD_SIZES:
        data = encoded(photo(width, height))
        ours = training(data, None)
        assert ours.shape == (3, size, size) and ours.dtype == torch.uint8
        assert torch.equal(evaluating(data, None), ours)
        timm_pixels = ((timm_transform(rgb(open_image(data))) * std + mean) * 255).round().to(torch.uint8)
        assert torch.equal(timm_pixels, ours), (width, height)


def test_eval_geometry_truncates_the_long_side_and_rounds_the_centre():
    assert eval_geometry(53, 37, 24, 0.875) == ((38, 27), (7, 2))  # 27 * 53 / 37 = 38.7 -> 38; (38 - 24) / 2 = 7
    assert eval_geometry(37, 53, 24, 0.875) == ((27, 38), (2, 7))  # (27 - 24) / 2 = 1.5 -> round() -> 2
    assert eval_geometry(24, 24, 24, 1.0) == ((24, 24), (0, 0))


def test_training_view_equals_full_decode_crop_then_resize_and_is_closer_to_float_than_pil():
    """`decode` + `resize_box` = PIL's decode (the same libjpeg-turbo pixels), the box cropped, resized by
    torchvision's uint8 antialiased kernel; no further than PIL's resize from a float64 antialiased reference."""
    from torchvision.transforms.v2.functional import resized_crop
    data = encoded(photo(301, 223))
    full = torch.from_numpy(np.asarray(rgb(open_image(data))).copy()).permute(2, 0, 1)
    assert torch.equal(decode(data), full)
    gaps = {"tensor": 0.0, "pil": 0.0}
    for box in [(10, 7, 200, 150), (0, 0, 301, 223), (151, 100, 150, 123), (3, 5, 48, 64)]:
        x, y, w, h = box
        ours = resize_box(decode(data), box, 32, "bilinear")
        assert torch.equal(ours, resized_crop(full, y, x, h, w, [32, 32], antialias=True))
        reference = torch.nn.functional.interpolate(full[None, :, y:y + h, x:x + w].double(), size=(32, 32),
                                                    mode="bilinear", antialias=True)[0]
        pil = rgb(open_image(data)).resize((32, 32), Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
        gaps["tensor"] += float((ours.double() - reference).abs().mean())
        gaps["pil"] += float((torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).double()
                              - reference).abs().mean())
    assert gaps["tensor"] <= gaps["pil"]


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("P", "GIF")])
def test_every_format_and_mode_comes_out_rgb_uint8(mode: str, fmt: str):
    im = photo(40, 30).convert(mode)
    data = encoded(im, fmt)
    view = Transform(16, Augment(random_resized_crop=(0.5, 1.0), hflip=True), train=True)(data, 7)
    assert view.shape == (3, 16, 16) and view.dtype == torch.uint8 and view.is_contiguous()
    expected = torch.from_numpy(np.asarray(open_image(data).convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(decode(data), expected)


@pytest.mark.parametrize("data", [b"", b"not an image", encoded(photo(40, 30))[:300], encoded(photo(40, 30))[:20]
                                  + b"\0" * 400])
def test_undecodable_bytes_raise_a_decode_error(data: bytes):
    for transform in (Transform(16, Augment(random_resized_crop=(0.5, 1.0)), train=True),
                      Transform(16, Augment(), train=False)):
        with pytest.raises(DECODE_ERRORS):
            transform(data, 3)


def test_a_jpeg_header_claiming_billions_of_pixels_is_refused_before_decoding():
    data = bytearray(encoded(photo(40, 30)))
    sof = data.index(b"\xff\xc0")  # baseline frame header: length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
    with pytest.raises(Image.DecompressionBombError):
        decode(bytes(data))
    with pytest.raises(DECODE_ERRORS):
        Transform(16, Augment(random_resized_crop=(0.5, 1.0)), train=True)(bytes(data), 3)


def test_the_soft_label_cache_records_the_pixel_paths():
    from ssld_zoo.train.recipe import load_recipe
    from ssld_zoo.train.soft_labels import transform_identity
    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "cifar10" / "b_ssld.yaml")
    assert transform_identity(recipe)["pixels"] == PIXELS


def test_ppm_is_read_in_place_pixel_for_pixel_as_pil_reads_it():
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8))
    data = encode_ppm(pixels)
    assert data.startswith(b"P6\n7 5\n255\n")
    assert torch.equal(decode(data), pixels)
    assert torch.equal(decode(data), torch.from_numpy(np.array(rgb(open_image(data)))).permute(2, 0, 1))


@given(header=st.sampled_from([b"P6 7 5 255\n", b"P6\n7\n5\n255 ", b"P6\n# a comment\n7 5\n255\n", b"P6 7 5 65535\n",
                               b"P6 0 5 255\n", b"P6 07 5 255\n", b"P6 99999999 5 255\n", b"P5 7 5 255\n",
                               b"P6 7 5 255"]),
       body=st.one_of(st.binary(max_size=300), st.binary(min_size=105, max_size=105)))  # 105: 7 x 5 x 3, exact
@settings(deadline=None)
def test_property_any_ppm_like_bytes_decode_as_pil_does_or_raise_a_decode_error(header: bytes, body: bytes):
    """Whatever follows a PPM-like header (short, long, exact), `decode` gives PIL's pixels or a decode error."""
    data = header + body
    try:
        expected = torch.from_numpy(np.array(rgb(open_image(data)))).permute(2, 0, 1)
    except DECODE_ERRORS:
        with pytest.raises(DECODE_ERRORS):
            decode(data)
        return
    assert torch.equal(decode(data), expected)


def test_without_torchvision_decode_jpeg_pil_decodes_the_same_pixels(monkeypatch: pytest.MonkeyPatch):
    """torchvision >= 0.29 deprecates `decode_jpeg`: when a release drops it, training decodes with PIL, pixel for
    pixel the same."""
    import torchvision.io
    rng = np.random.default_rng(1)
    jpegs = []
    for mode in ("RGB", "L"):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).convert(mode).save(out, "JPEG", quality=90)
        jpegs.append(out.getvalue())
    with_torchvision = [decode(data) for data in jpegs]
    monkeypatch.delattr(torchvision.io, "decode_jpeg")
    for data, expected in zip(jpegs, with_torchvision, strict=True):
        assert torch.equal(decode(data), expected)
