"""`get_transform(name, exact=True)` equals PaddleClas's own eval operators, pixel for pixel, on real JPEG files.

The oracle is `paddleclas/deploy/python/preprocess.py` from the installed paddleclas 2.6.0 wheel (`DecodeImage`,
`ResizeImage`, `CropImage`, `NormalizeImage`, `ToCHWImage`), loaded from its file: the package's `__init__` imports
faiss and more, so stand-in parent packages keep it from running.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ssld_zoo
from ssld_zoo.catalogue import registry
from ssld_zoo.convert.paddle_check import paddleclas_folder
from ssld_zoo.data.paddle_preprocess import PaddleEvalTransform
from ssld_zoo.errors import MissingDependencyError

pytest.importorskip("cv2", reason="opencv-python-headless is part of the dev extra")  # installed by .ci/run
pytest.importorskip("paddle", reason="paddle is part of the paddle extra")  # installed by .ci/run


def _paddleclas_deploy() -> Path:
    folder = paddleclas_folder()  # found without running the package's __init__
    if folder is None:
        pytest.fail("paddleclas 2.6.0 is the oracle: pip install --no-deps paddleclas==2.6.0 (as .ci/run does)")
    return folder / "deploy" / "python"


@pytest.fixture(scope="module")
def paddle_ops() -> types.ModuleType:
    """PaddleClas's deploy preprocess module, imported from its file under stand-in parent packages."""
    folder = _paddleclas_deploy()
    saved = {name: sys.modules.get(name) for name in ("paddleclas", "paddleclas.deploy", "paddleclas.deploy.python",
                                                       "paddleclas.deploy.python.det_preprocess")}
    try:
        for name, path in (("paddleclas", folder.parents[1]), ("paddleclas.deploy", folder.parent),
                           ("paddleclas.deploy.python", folder)):
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
        module = None
        for name in ("det_preprocess", "preprocess"):
            spec = importlib.util.spec_from_file_location(f"paddleclas.deploy.python.{name}", folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        return module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _sharp(width: int, height: int, seed: int) -> np.ndarray:
    """Hard edges (checkerboard, one-pixel lines, text-like blocks) over a smooth gradient."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                      (x + y) * 255 // max(width + height - 2, 1)], -1).astype(np.uint8)
    image[((x // 7 + y // 7) % 2 == 0)] = [250, 250, 250]
    image[::13] = [0, 0, 0]
    image[:, ::17] = [255, 0, 0]
    for _ in range(12):
        top, left = rng.integers(0, height - 8), rng.integers(0, width - 8)
        image[top:top + 6, left:left + rng.integers(2, 8)] = rng.integers(0, 256, 3)
    return image


SIZES = [(500, 375), (375, 500), (320, 320), (1023, 257), (257, 700), (233, 241)]  # (width, height)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("jpegs")
    paths = []
    for i, (width, height) in enumerate(SIZES):
        path = folder / f"sharp_{width}x{height}.jpg"
        Image.fromarray(_sharp(width, height, i)).save(path, quality=90)
        paths.append(path)
    return paths


def _paddle_pipeline(ops: types.ModuleType, resize_short: int, crop: int, interpolation: str | None,
                     backend: str) -> list:
    resize = {"resize_short": resize_short, "backend": backend}
    if interpolation is not None:
        resize["interpolation"] = interpolation
    return [ops.DecodeImage(to_rgb=True, channel_first=False), ops.ResizeImage(**resize), ops.CropImage(size=crop),
            ops.NormalizeImage(scale="1.0/255.0", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], order=""),
            ops.ToCHWImage()]


def _run_paddle(pipeline: list, data: bytes) -> np.ndarray:
    out = data
    for op in pipeline:
        out = op(out)
    return out


# (zoo weight, the interpolation its PaddleClas config names: None is ResizeImage's default, cv2 bilinear)
WEIGHTS = [("resnet50d_ssld", None), ("hgnetv2_b0_ssld", "bicubic"), ("hgnet_base_ssld", "bicubic"),
           ("resnet50d_ssld.fix_ssld_v2_in1k", None)]


@pytest.mark.parametrize("name, interpolation", WEIGHTS)
def test_exact_transform_equals_paddleclas_operators(name, interpolation, paddle_ops, jpegs):
    transform = ssld_zoo.get_transform(name, exact=True)
    pre = registry.get_weight_entry(name).preprocessing["source"]
    pipeline = _paddle_pipeline(paddle_ops, pre["resize_short"], pre["crop_size"], interpolation, pre["backend"])
    std = np.asarray([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
    for path in jpegs:
        data = path.read_bytes()
        expected = _run_paddle(pipeline, data)
        for given in (data, path):
            ours = transform(given)
            assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32
            assert ours.shape == expected.shape == (3, pre["crop_size"], pre["crop_size"])
            assert float((np.abs(ours.numpy() - expected) * std).max()) <= 1 / 255, path.name  # in pixel units
            assert np.array_equal(ours.numpy(), expected)  # the same library calls: bit-identical


def test_timm_default_is_measurably_not_exact_on_sharp_edges(jpegs):
    """The reason `exact=True` exists: timm's antialiased PIL resize moves sharp-edged pixels by many levels."""
    timm_transform, exact = ssld_zoo.get_transform("resnet50d_ssld"), ssld_zoo.get_transform("resnet50d_ssld",
                                                                                             exact=True)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    with Image.open(jpegs[0]) as im:
        diff = (timm_transform(im.convert("RGB")) - exact(jpegs[0])).abs() * std * 255
    assert diff.max() > 10 and diff.mean() > 0.5


def test_decoded_inputs_take_the_same_path():
    transform = PaddleEvalTransform(resize_short=40, crop_size=32)
    rgb = _sharp(61, 45, 0)
    from_array, from_pil = transform(rgb), transform(Image.fromarray(rgb))
    assert torch.equal(from_array, from_pil) and from_array.shape == (3, 32, 32)


@pytest.mark.parametrize("bad, problem", [
    (b"", "OpenCV cannot decode"), (b"not an image at all", "OpenCV cannot decode"),
    (np.zeros((4, 4), np.uint8), "RGB uint8 of shape"), (3.5, "Cannot preprocess a float"),
])
def test_bad_inputs_get_one_clear_error(bad, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        PaddleEvalTransform(resize_short=40, crop_size=32)(bad)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="must fit in the resized short side"):
        PaddleEvalTransform(resize_short=30, crop_size=32)
    with pytest.raises(ValueError, match="'cv2' or 'pil'"):
        PaddleEvalTransform(resize_short=40, crop_size=32, backend="skimage")


def test_models_built_by_create_get_the_cited_sizes():
    model = ssld_zoo.create("hgnetv2_b0_ssld", device="meta")
    transform = ssld_zoo.get_transform(model, exact=True)
    assert (transform.resize_short, transform.crop_size, transform.backend, transform.interpolation) == (
        232, 224, "pil", "bicubic")


def test_missing_opencv_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` sees when opencv is not installed
    with pytest.raises(MissingDependencyError, match="opencv-python-headless") as caught:
        PaddleEvalTransform(resize_short=40, crop_size=32)(_sharp(50, 40, 0))
    assert caught.value.package == "opencv-python-headless"


def test_eval_cli_with_paddle_preprocessing_on_cifar(tmp_path, capsys):
    """`ssld-zoo eval --preprocess paddle`: CIFAR JPEG bytes decoded by OpenCV, the same top-1 path as timm's."""
    from ssld_zoo.tools.evaluate import evaluate
    paddle = evaluate("resnet20_cifar.sup_cifar10", "cifar10:test", limit=200, workers=0, preprocess="paddle")
    timm = evaluate("resnet20_cifar.sup_cifar10", "cifar10:test", limit=200, workers=0)
    assert paddle["preprocessing"]["preprocess"] == "paddle" and paddle["preprocessing"]["resize_short"] == 32
    assert paddle["images"] == timm["images"] == 200
    assert abs(paddle["top1"] - timm["top1"]) <= 2.0  # decoders differ by JPEG rounding only at 32 px
