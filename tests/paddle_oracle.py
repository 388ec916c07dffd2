"""PaddleClas itself as the oracle for the converters.

`check_against_paddle(case, tmp_path)` builds the PaddleClas model named by `case` (from the installed `paddleclas`
wheel's `ppcls.arch.backbone`), gives it random weights and random BatchNorm statistics, saves it with
`paddle.save`, converts that file with `ssld_zoo.convert.convert_pdparams`, and compares the logits and every
feature stage (forward hooks on the Paddle sublayers named in `case.stages` against the zoo model's
`features_only` outputs) on fixed random inputs: `max|Δ| / max|ref| <= 1e-4`.

paddleclas is installed with `pip install --no-deps paddleclas` (its full dependency set pins numpy 1), so the package
itself cannot be imported; the backbones are imported from its `ppcls` folder directly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ssld_zoo.convert import paddle_check
from ssld_zoo.convert.paddle_check import DEFAULT_SIZES, PADDLE_MODELS, RTOL, paddle_outputs, ppcls_backbone, zoo_models

__all__ = ["Case", "case_for", "build_paddle_model", "check_against_paddle", "paddle_outputs", "ppcls_backbone",
           "zoo_models"]


@dataclass(frozen=True)
class Case:
    """One zoo model and the PaddleClas model whose weights it takes."""

    zoo_name: str
    paddle_module: str  # under ppcls.arch.backbone, e.g. "legendary_models.resnet"
    paddle_fn: str  # e.g. "ResNet50_vd"
    stages: Sequence[str]  # Paddle sublayer names whose outputs are the zoo model's feature stages, in order
    paddle_kwargs: dict[str, Any] = field(default_factory=dict)
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES
    # Paddle state-dict entries set to a constant after the random init, to exercise a case random weights rarely
    # reach (e.g. a negative learnable-affine bias)
    paddle_fill: dict[str, float] = field(default_factory=dict)
    # Maps each structured key of the built Paddle model to the key the saved file holds, to emulate an older
    # PaddleClas naming of the same network (e.g. the pre-legendary dygraph ResNet_vd); None saves the keys as they are
    saved_key: Optional[Callable[[str], str]] = None
    # "float64" runs both models in double precision: for random weights under which float32 rounding is amplified
    # past the tolerance (deep SE networks whose random activations saturate the gates), not for conversion slack
    dtype: str = "float32"

    def __str__(self) -> str:
        return self.zoo_name


def case_for(zoo_name: str, **changes: Any) -> Case:
    """The Case of a zoo model from the package's table of PaddleClas models (`PADDLE_MODELS`), with `changes`."""
    spec = PADDLE_MODELS[zoo_name]
    case = Case(zoo_name, spec.module, spec.fn, spec.stages, paddle_kwargs=dict(spec.kwargs), sizes=spec.sizes,
                dtype=spec.dtype)
    return dataclasses.replace(case, **changes)


def build_paddle_model(case: Case, seed: int = 0) -> Any:
    """The PaddleClas model with random weights and random BatchNorm statistics, in eval mode."""
    import paddle
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    model = paddle_check.build_paddle_model(
        paddle_check.PaddleModel(case.paddle_module, case.paddle_fn, case.stages, case.paddle_kwargs, dtype=case.dtype))
    state = model.state_dict()
    assert set(case.paddle_fill) <= set(state), f"no Paddle weights {sorted(set(case.paddle_fill) - set(state))}"
    for key, value in state.items():
        shape = value.shape
        if key.endswith("_variance"):
            new = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("_mean"):
            new = rng.normal(0.0, 0.1, shape)
        elif len(shape) <= 1:
            new = rng.normal(0.0, 0.1, shape) + (1.0 if key.endswith((".weight", ".scale")) else 0.0)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
            new = rng.normal(0.0, (2.0 / max(fan_in, 1)) ** 0.5, shape)
        if key in case.paddle_fill:
            new = np.full(shape, case.paddle_fill[key])
        value.set_value(new.astype(case.dtype))
    model.eval()
    return model


def check_against_paddle(case: Case, tmp_path: Path) -> None:
    """Convert a paddle.save'd random PaddleClas model and compare outputs at every size in `case.sizes`."""
    import paddle

    from ssld_zoo.convert import convert_pdparams
    model = build_paddle_model(case)
    path = tmp_path / f"{case.paddle_fn}.pdparams"
    state = model.state_dict()
    if case.saved_key is not None:
        state = {case.saved_key(key): value for key, value in state.items()}
    paddle.save(state, str(path))
    zoo_model, zoo_features = zoo_models(case.zoo_name, convert_pdparams(path, case.zoo_name),
                                         getattr(torch, case.dtype))
    errors = paddle_check.compare_outputs(model, zoo_model, zoo_features, case.stages, case.sizes, case.dtype)
    for what, error in errors.items():
        assert error == error, f"{case} {what}: Paddle output is all zeros; the check would prove nothing"
        assert error <= RTOL, f"{case} {what}: max|Δ|/max|ref| = {error:.2e} > {RTOL:.0e}"
