"""PaddleClas's eval preprocessing, pixel for pixel: the input on which PaddleClas measured its reported accuracy.

PaddleClas (`deploy/python/preprocess.py` and the `DataLoader.Eval` ops of its configs) decodes with OpenCV
(`cv2.imdecode`, BGR turned into RGB), resizes the short side to `resize_short` with `w = int(round(w * scale))`, using
`cv2.resize` (bilinear without antialiasing, the default) or PIL (`backend: pil`, the PP-HGNet configs' bicubic),
crops the centre with `(w - crop) // 2`, and normalises in float32 as `(x * (1/255) - mean) / std`. timm's eval
transform decodes with PIL, resizes with antialiasing and truncates the long side, so its pixels differ
(`docs/evaluation.md` gives the measured difference). Needs `opencv-python-headless` (`pip install
'ssld-zoo[exact]'`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ssld_zoo.errors import DataError, MissingDependencyError
from ssld_zoo.reading import MAX_IMAGE_BYTES, read_bytes

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "pip install 'ssld-zoo[exact]' (or opencv-python-headless)"


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError(f"PaddleClas-exact preprocessing decodes and resizes with OpenCV, which is not "
                                     f"installed: {INSTALL_HINT}.", package="opencv-python-headless") from None
    return cv2


@dataclass(frozen=True)
class PaddleEvalTransform:
    """Decode → resize short side → centre crop → normalise, as PaddleClas's eval pipeline does; returns a float32
    CHW tensor. Call it with encoded bytes or a file path (decoded by OpenCV, as PaddleClas does), or with an
    already-decoded PIL image or RGB uint8 array (then the decoder's rounding is the caller's)."""

    resize_short: int
    crop_size: int
    interpolation: str = "bilinear"
    backend: str = "cv2"
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.backend not in ("cv2", "pil"):
            raise DataError(f"PaddleClas resizes with 'cv2' or 'pil', not '{self.backend}'.")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise DataError(f"interpolation must be bilinear, bicubic or nearest, not '{self.interpolation}'.")
        if not 0 < self.crop_size <= self.resize_short:
            raise DataError(f"The centre crop ({self.crop_size} px) must fit in the resized short side "
                            f"({self.resize_short} px).")

    @property
    def size(self) -> int:
        return self.crop_size

    def decode(self, data: bytes) -> np.ndarray:
        """Encoded image bytes → RGB uint8 HWC, with OpenCV as PaddleClas's `DecodeImage` (3 channels always)."""
        cv2 = _cv2()
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise ValueError("OpenCV cannot decode this image")
        return np.ascontiguousarray(image[:, :, ::-1])

    def pixels(self, image: Any) -> np.ndarray:
        """The resized and cropped RGB uint8 HWC pixels, before normalisation."""
        rgb = self._rgb(image)
        height, width = rgb.shape[:2]
        scale = float(self.resize_short) / min(width, height)
        size = (int(round(width * scale)), int(round(height * scale)))
        resized = self._resize(rgb, size)
        top, left = (resized.shape[0] - self.crop_size) // 2, (resized.shape[1] - self.crop_size) // 2
        return resized[top:top + self.crop_size, left:left + self.crop_size]

    def __call__(self, image: Any, seed: int | None = None) -> "torch.Tensor":
        """Normalised float32 CHW tensor of `image` (`seed` is accepted for the training pipeline's signature)."""
        import torch
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 1, 3)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 1, 3)
        normalised = (self.pixels(image).astype(np.float32) * np.float32(1.0 / 255.0) - mean) / std
        return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))

    def _rgb(self, image: Any) -> np.ndarray:
        if isinstance(image, (bytes, bytearray, memoryview)):
            return self.decode(bytes(image))
        if isinstance(image, (str, os.PathLike)):
            return self.decode(read_bytes(image, what="image", max_bytes=MAX_IMAGE_BYTES, error=DataError))
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise DataError(f"An image array must be RGB uint8 of shape (H, W, 3), not {image.dtype} "
                                f"{image.shape}.")
            return image
        from PIL import Image
        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"))
        raise DataError(f"Cannot preprocess a {type(image).__name__}: pass encoded bytes, a file path, a PIL image "
                        "or an RGB uint8 array.")

    def _resize(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if self.backend == "pil":
            from PIL import Image
            resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                        "nearest": Image.Resampling.NEAREST}
            return np.asarray(Image.fromarray(rgb).resize(size, resample[self.interpolation]))
        cv2 = _cv2()
        flags = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}
        return cv2.resize(rgb, size, interpolation=flags[self.interpolation])


def paddle_transform_for(preprocessing: dict[str, Any]) -> PaddleEvalTransform:
    """The exact transform of a catalogue weight's `preprocessing`: its cited `source` when it has one, else the
    sizes that timm's crop_pct gives, with PaddleClas's own choice of library (PIL for bicubic, OpenCV otherwise)."""
    source = preprocessing.get("source")
    if source:
        return PaddleEvalTransform(source["resize_short"], source["crop_size"], source["interpolation"],
                                   source["backend"], tuple(preprocessing["mean"]), tuple(preprocessing["std"]))
    import math
    crop = int(preprocessing["input_size"][-1])
    interpolation = preprocessing["interpolation"]
    return PaddleEvalTransform(math.floor(crop / preprocessing["crop_pct"]), crop, interpolation,
                               "pil" if interpolation == "bicubic" else "cv2", tuple(preprocessing["mean"]),
                               tuple(preprocessing["std"]))
