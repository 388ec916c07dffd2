"""The frozen teacher that scores the pool, in eval mode with its own eval preprocessing."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, cast

from ssld_zoo.errors import MineError
from ssld_zoo.tools.mining.settings import MineSettings

if TYPE_CHECKING:
    import numpy as np
    import torch


class _TimmClassifier(Protocol):
    """The timm classifier interface that the teacher uses."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...
    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


class Teacher:
    """The frozen teacher in eval mode with its own preprocessing: uint8 images -> (top score, top class, features)."""

    def __init__(self, settings: MineSettings, data_root: str | os.PathLike | None, device: "torch.device") -> None:
        from ssld_zoo.train.data import RESAMPLE, Transform
        from ssld_zoo.train.networks import build_network, normalized
        from ssld_zoo.train.recipe import Augment, ModelSpec
        spec = ModelSpec(model=settings.teacher, pretrained=settings.teacher_weights or True)
        model = build_network(spec, "teacher", data_root).module.eval().requires_grad_(False)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        interpolation = cfg.get("interpolation") or "bilinear"
        if interpolation not in RESAMPLE:
            raise MineError(f"teacher '{settings.teacher}' asks for {interpolation} resizing; only "
                            f"{', '.join(RESAMPLE)} are supported.")
        self.size = settings.input_size or int((cfg.get("input_size") or (3, 224, 224))[-1])
        self.transform = Transform(self.size, Augment(interpolation=interpolation,
                                                      eval_crop_pct=float(cfg.get("crop_pct") or 1.0)), train=False)
        self.net = normalized(model).to(device)
        self.device, self.features = device, settings.dedup == "features"
        if self.features and not hasattr(model, "forward_head"):
            raise MineError(f"teacher '{settings.teacher}' has no timm forward_head(); use --dedup phash.")

    def __call__(self, images: "torch.Tensor") -> tuple["np.ndarray", "np.ndarray", "torch.Tensor | None"]:
        """Softmax confidence and index of the top class (numpy), and L2-normalised pre-logits (or None)."""
        import torch

        from ssld_zoo.train.networks import unit_pixels
        with torch.inference_mode():
            x = self.net.normalize(unit_pixels(images, self.device))
            model = cast(_TimmClassifier, self.net.model)
            if self.features:
                pooled = model.forward_features(x)
                logits = model.forward_head(pooled)
                feats = torch.nn.functional.normalize(model.forward_head(pooled, pre_logits=True).flatten(1), dim=1)
            else:
                logits, feats = model(x), None
            score, cls = logits.double().softmax(-1).max(-1)  # float64: confident scores do not all round to 1
        return score.cpu().numpy(), cls.cpu().numpy(), feats

