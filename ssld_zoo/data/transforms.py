"""The preprocessing that belongs to each weight: timm's eval (or training) transform from the weight's pretrained
cfg, or PaddleClas's exact eval pipeline (`paddle_preprocess`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssld_zoo.catalogue.registry import get_weight_entry

if TYPE_CHECKING:
    import torch


def preprocessing_config(name_or_model: str | torch.nn.Module) -> dict[str, Any]:
    """timm's data config (input size, crop_pct, interpolation, mean, std) of a zoo weight (`name` or `name.tag`) or
    of a model built by `create()`."""
    from timm.data import resolve_data_config
    from ssld_zoo.weights.sources import pretrained_cfg_for
    if isinstance(name_or_model, str):
        cfg = pretrained_cfg_for(get_weight_entry(name_or_model))
    else:
        cfg = dict(getattr(name_or_model, "pretrained_cfg", {}))
    return resolve_data_config({}, pretrained_cfg=cfg)


def get_transform(name_or_model: str | torch.nn.Module, train: bool = False, *, exact: bool = False) -> Any:
    """The preprocessing that belongs to a zoo weight (`name` or `name.tag`) or to a model built by `create()`.

    By default timm's transform (PIL decode, antialiased resize), which every timm pipeline uses. `exact=True` gives
    PaddleClas's own eval pipeline instead (OpenCV decode and resize, Paddle's rounding; `PaddleEvalTransform`),
    the input on which PaddleClas measured its reported accuracy; it takes file paths, encoded bytes, PIL images or
    RGB arrays.
    """
    if exact:
        if train:
            raise ValueError("exact=True is PaddleClas's eval preprocessing; there is no exact training transform.")
        from ssld_zoo.data.paddle_preprocess import paddle_transform_for
        if isinstance(name_or_model, str):
            return paddle_transform_for(get_weight_entry(name_or_model).preprocessing)
        config = preprocessing_config(name_or_model)
        return paddle_transform_for({**config, "input_size": list(config["input_size"])})
    from timm.data import create_transform
    return create_transform(**preprocessing_config(name_or_model), is_training=train)
