"""Proof that converted weights compute what PaddleClas computes, with PaddleClas's own code as the oracle.

`check_converted(arrays, name)` builds the PaddleClas model of zoo model `name` from the installed paddleclas wheel
(`ppcls.arch.backbone`), loads `arrays` (a PaddleClas state dict, as `read_pdparams` returns it: no pickle is run),
converts the same arrays with `ssld_zoo.convert`, and compares the logits and every feature stage (forward hooks on
the Paddle sublayers in `PADDLE_MODELS` against the zoo model's `features_only` outputs) on fixed random inputs:
`max|Δ| / max|ref| <= 1e-4` everywhere. The conversion tests run it on random weights; `ssld-zoo release` on the
real files.

Needs paddlepaddle and paddleclas: `pip install 'ssld-zoo[paddle]'` and `pip install --no-deps paddleclas==2.6.0`
(its declared dependencies pin numpy 1, so the package itself is not imported: only its `ppcls` folder).
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ssld_zoo.errors import MissingDependencyError

if TYPE_CHECKING:
    import torch

RTOL = 1e-4
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((224, 224), (231, 199))
# HRNet's fuse layers need ceil(H/4) and ceil(W/4) to be multiples of 8 (Paddle raises a broadcast error otherwise)
HRNET_SIZES: tuple[tuple[int, int], ...] = ((224, 224), (253, 189))
INSTALL_HINT = "pip install 'ssld-zoo[paddle]' && pip install --no-deps paddleclas==2.6.0"

_OLD_LAYER = {"conv": "_conv", "bn": "_batch_norm"}
_R50_BLOCKS = [(stage, index) for stage, depth in enumerate((3, 4, 6, 3)) for index in range(depth)]


def old_dygraph_resnet50_vd_key(key: str) -> str:
    """The key that the pre-legendary dygraph ResNet50_vd gives the weight that legendary ResNet50_vd calls `key`.

    Source: PaddleClas `ppcls/arch/backbone/model_zoo/resnet_vd.py` at commit d8def846 (the dygraph `ResNet_vd`
    before `legendary_models/resnet.py`), whose naming the older `dygraph/ResNet50_vd_ssld_v2` and
    `Fix_ResNet50_vd_ssld_v2` files are expected to use: `conv1_1`..`conv1_3` for the stem, `bb_{stage}_{i}` per
    block with `conv0`/`conv1`/`conv2`/`short`, `_conv` / `_batch_norm` inside every `ConvBNLayer`, `out` for the
    classifier.
    """
    stem = re.fullmatch(r"stem\.(\d)\.(conv|bn)\.(\w+)", key)
    if stem:
        return f"conv1_{int(stem[1]) + 1}.{_OLD_LAYER[stem[2]]}.{stem[3]}"
    block = re.fullmatch(r"blocks\.(\d+)\.(conv[0-2]|short)\.(conv|bn)\.(\w+)", key)
    if block:
        stage, index = _R50_BLOCKS[int(block[1])]
        return f"bb_{stage}_{index}.{block[2]}.{_OLD_LAYER[block[3]]}.{block[4]}"
    head = re.fullmatch(r"fc\.(weight|bias)", key)
    if not head:
        raise KeyError(f"unexpected legendary ResNet50_vd key {key}")
    return f"out.{head[1]}"


_EARLY_HRNET_NAMES = [(r"\.conv\.", "._conv."), (r"\.bn\.", "._batch_norm."),
                      (r"^conv_(tr[1-3](?:_[12])?)\.", r"\1."), (r"\.se\.fc_(squeeze|excitation)\.", r".se.\1."),
                      (r"^fc\.", "out.")]


def early_legendary_hrnet_key(key: str) -> str:
    """paddleclas 2.6's HRNet key → the same layer's key in the earlier legendary `hrnet.py` (PaddleClas 014f1d1d)."""
    for pattern, repl in _EARLY_HRNET_NAMES:
        key = re.sub(pattern, repl, key)
    return key


@dataclass(frozen=True)
class PaddleModel:
    """The PaddleClas model whose weights a zoo model takes, and the sublayers that are its feature stages."""

    module: str  # under ppcls.arch.backbone, e.g. "legendary_models.resnet"
    fn: str  # e.g. "ResNet50_vd"
    stages: Sequence[str]  # Paddle sublayer names whose outputs are the zoo model's feature stages, in order
    kwargs: dict[str, Any] = field(default_factory=dict)
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES
    # Older namings of the same network that PaddleClas files may use: paddleclas 2.6 key -> file key
    legacy_keys: Sequence[Callable[[str], str]] = ()
    # "float64": for deep SE networks whose saturated gates amplify float32 rounding past the tolerance
    dtype: str = "float32"


_RESNET = "legendary_models.resnet"
_HGNET_STAGES = ("stages.0", "stages.1", "stages.2", "stages.3")
_LCNET_STAGES = ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")
_HRNET_STAGES = ("conv_layer1_1", *(f"last_cls.func_list.{i}" for i in range(4)))
_V3 = "legendary_models.mobilenet_v3"
_V3_SMALL = ("conv", "blocks.0", "blocks.2", "blocks.7", "last_second_conv")
_RES2NET = "model_zoo.res2net_vd"

PADDLE_MODELS: dict[str, PaddleModel] = {
    "resnet34d_ssld": PaddleModel(_RESNET, "ResNet34_vd", ("stem", "blocks.2", "blocks.6", "blocks.12", "blocks.15")),
    "resnet50d_ssld": PaddleModel(_RESNET, "ResNet50_vd", ("stem", "blocks.2", "blocks.6", "blocks.12", "blocks.15"),
                                  legacy_keys=(old_dygraph_resnet50_vd_key,)),
    "resnet101d_ssld": PaddleModel(_RESNET, "ResNet101_vd", ("stem", "blocks.2", "blocks.6", "blocks.29", "blocks.32")),
    "res2net50d_ssld": PaddleModel(_RES2NET, "Res2Net50_vd_26w_4s",
                                   ("conv1_3", "bb_0_2", "bb_1_3", "bb_2_5", "bb_3_2")),
    "res2net101d_ssld": PaddleModel(_RES2NET, "Res2Net101_vd_26w_4s",
                                    ("conv1_3", "bb_0_2", "bb_1_3", "bb_2_22", "bb_3_2")),
    "res2net200d_ssld": PaddleModel(_RES2NET, "Res2Net200_vd_26w_4s",
                                    ("conv1_3", "bb_0_2", "bb_1_11", "bb_2_47", "bb_3_2")),
    "hrnet_w18c_ssld": PaddleModel("legendary_models.hrnet", "HRNet_W18_C", _HRNET_STAGES, sizes=HRNET_SIZES,
                                   legacy_keys=(early_legendary_hrnet_key,)),
    "hrnet_w48c_ssld": PaddleModel("legendary_models.hrnet", "HRNet_W48_C", _HRNET_STAGES, sizes=HRNET_SIZES,
                                   legacy_keys=(early_legendary_hrnet_key,)),
    # paddleclas 2.6's SE_HRNet_W64_C() raises KeyError (its MODEL_URLS lacks the name): its HRNet is built directly
    "se_hrnet_w64c_ssld": PaddleModel("legendary_models.hrnet", "HRNet", _HRNET_STAGES, sizes=HRNET_SIZES,
                                      kwargs={"width": 64, "has_se": True, "stages_pattern": ["st4"]},
                                      legacy_keys=(early_legendary_hrnet_key,), dtype="float64"),
    **{f"hgnet_{size}_ssld": PaddleModel("legendary_models.pp_hgnet", f"PPHGNet_{size}", _HGNET_STAGES)
       for size in ("tiny", "small", "base")},
    **{f"hgnetv2_b{b}_ssld": PaddleModel("legendary_models.pp_hgnet_v2", f"PPHGNetV2_B{b}", _HGNET_STAGES)
       for b in range(7)},
    "mobilenetv1_ssld": PaddleModel("legendary_models.mobilenet_v1", "MobileNetV1",
                                    ("blocks.0", "blocks.2", "blocks.4", "blocks.10", "blocks.12")),
    "mobilenetv2_ssld": PaddleModel("model_zoo.mobilenet_v2", "MobileNetV2",
                                    ("conv2", "conv3", "conv4", "conv6", "conv8")),
    "mobilenetv3_large_ssld": PaddleModel(_V3, "MobileNetV3_large_x1_0",
                                          ("blocks.0", "blocks.2", "blocks.5", "blocks.11", "last_second_conv")),
    "mobilenetv3_small_ssld": PaddleModel(_V3, "MobileNetV3_small_x1_0", _V3_SMALL),
    "mobilenetv3_small_035_ssld": PaddleModel(_V3, "MobileNetV3_small_x0_35", _V3_SMALL),
    "ghostnet_130_ssld": PaddleModel("model_zoo.ghostnet", "GhostNet_x1_3",
                                     ("conv1._conv", "_ghostbottleneck_1", "_ghostbottleneck_3", "_ghostbottleneck_5",
                                      "_ghostbottleneck_11")),
    **{name: PaddleModel("legendary_models.pp_lcnet", fn, _LCNET_STAGES)
       for name, fn in (("lcnet_025_ssld", "PPLCNet_x0_25"), ("lcnet_050_ssld", "PPLCNet_x0_5"),
                        ("lcnet_100_ssld", "PPLCNet_x1_0"), ("lcnet_250_ssld", "PPLCNet_x2_5"))},
    "lcnetv2_base_ssld": PaddleModel("legendary_models.pp_lcnet_v2", "PPLCNetV2_base", _HGNET_STAGES),
}


def paddle_available() -> bool:
    """True when paddlepaddle and the paddleclas wheel are both installed (nothing is imported)."""
    return importlib.util.find_spec("paddle") is not None and paddleclas_folder() is not None


@functools.lru_cache(maxsize=1)
def paddleclas_folder() -> Path | None:
    """The installed paddleclas package folder, found before `ppcls_backbone` puts it on `sys.path` (where its own
    `paddleclas.py` would then shadow the package)."""
    spec = importlib.util.find_spec("paddleclas")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / "ppcls").is_dir() else None


@functools.lru_cache(maxsize=None)
def ppcls_backbone(module: str) -> Any:
    """`ppcls.arch.backbone.<module>` from the installed paddleclas wheel."""
    folder = paddleclas_folder()
    if folder is None or importlib.util.find_spec("paddle") is None:
        raise MissingDependencyError(f"Checking against PaddleClas needs paddlepaddle and paddleclas: {INSTALL_HINT}.",
                                     package="paddleclas")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    from ppcls.utils import logger
    logger.init_logger()
    return importlib.import_module(f"ppcls.arch.backbone.{module}")


def build_paddle_model(spec: PaddleModel) -> Any:
    """The PaddleClas model of `spec` with its initial weights, in eval mode."""
    import paddle
    # A fresh name scope: the old (model_zoo) PaddleClas models give their parameters fixed static names, which a
    # process may otherwise create only once (`ValueError: parameter name [conv1_1_weights] have be been used`).
    with paddle.utils.unique_name.guard():
        model = getattr(ppcls_backbone(spec.module), spec.fn)(**spec.kwargs)
    if spec.dtype != "float32":
        model.to(dtype=spec.dtype)
    model.eval()
    return model


def paddle_outputs(model: Any, stages: Sequence[str], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the outputs of the named sublayers for input `x` (NCHW)."""
    import paddle
    layers = dict(model.named_sublayers())
    missing = [s for s in stages if s not in layers]
    if missing:
        raise KeyError(f"no Paddle sublayers {missing}; some are {list(layers)[:20]}")
    captured: dict[str, np.ndarray] = {}
    hooks = [layers[s].register_forward_post_hook(
        lambda layer, inputs, output, s=s: captured.__setitem__(s, output.numpy())) for s in stages]
    try:
        with paddle.no_grad():
            logits = model(paddle.to_tensor(x)).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return logits, [captured[s] for s in stages]


def zoo_models(name: str, state_dict: dict[str, "torch.Tensor"],
               dtype: "torch.dtype | None" = None) -> tuple["torch.nn.Module", "torch.nn.Module"]:
    """The zoo model and its `features_only` variant, both loaded with the converted weights (strictly)."""
    import timm
    import torch
    dtype = dtype or torch.float32
    model = timm.create_model(name).to(dtype).eval()
    model.load_state_dict(state_dict, strict=True)
    features = timm.create_model(name, features_only=True).to(dtype).eval()
    result = features.load_state_dict(features_keys(features, state_dict), strict=False)
    if result.missing_keys:
        raise KeyError(f"features_only {name} lacks weights for {result.missing_keys[:5]}")
    return model, features


def features_keys(features: "torch.nn.Module", state_dict: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """`state_dict` under the features model's key names: timm's `FeatureListNet(flatten_sequential=True)` names the
    children of a top-level `nn.Sequential` `stages_0`, ... where the model has `stages.0`, ...; other keys pass."""
    out = dict(state_dict)
    for key in features.state_dict():
        first, _, rest = key.partition(".")
        parent, _, child = first.rpartition("_")
        if key not in state_dict and parent and f"{parent}.{child}.{rest}" in state_dict:
            out[key] = state_dict[f"{parent}.{child}.{rest}"]
    return out


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|Δ| / max|ref|; infinite when the shapes differ, NaN when the reference is all zeros (proves nothing)."""
    if actual.shape != expected.shape:
        return float("inf")
    scale = float(np.abs(expected).max())
    return float(np.abs(actual - expected).max()) / scale if scale > 0 else float("nan")


@dataclass
class CheckReport:
    """Every comparison made (`what` → relative error) and the verdict."""

    name: str
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=float("nan"))

    @property
    def passed(self) -> bool:
        return bool(self.errors) and all(e <= RTOL for e in self.errors.values())  # NaN and inf fail

    def failures(self) -> list[str]:
        return [f"{what}: max|Δ|/max|ref| = {e:.2e}" for what, e in self.errors.items() if not e <= RTOL]

    def summary(self) -> str:
        if self.passed:
            return (f"{self.name}: {len(self.errors)} outputs (logits and feature stages) match PaddleClas "
                    f"(worst max|Δ|/max|ref| {self.worst:.1e} <= {RTOL:.0e})")
        return f"{self.name} differs from PaddleClas: " + "; ".join(self.failures()[:4])


def paddle_state(spec: PaddleModel, model: Any, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` under the PaddleClas model's own keys: as they are, or through one of the spec's older namings."""
    expected = list(model.state_dict())
    for naming in (lambda key: key, *spec.legacy_keys):
        try:
            keys = {key: naming(key) for key in expected}
        except KeyError:
            continue
        if set(keys.values()) == set(arrays):
            return {key: arrays[file_key] for key, file_key in keys.items()}
    extra, missing = sorted(set(arrays) - set(expected))[:3], sorted(set(expected) - set(arrays))[:3]
    raise KeyError(f"the file's parameter names are not those of paddleclas 2.6's {spec.fn} (nor an older naming "
                   f"this check knows): e.g. {extra} in the file, {missing} in the model")


def check_converted(arrays: dict[str, np.ndarray], name: str, *, converted: dict[str, "torch.Tensor"] | None = None,
                    seed: int = 1) -> CheckReport:
    """Load `arrays` into PaddleClas's model of zoo model `name`, and their conversion (`converted`, e.g. the tensors
    of the file about to be published; by default converted here) into the zoo model, then compare logits and
    feature stages at every size of the model's spec; the report says how close each was."""
    import paddle
    import torch

    from ssld_zoo.convert import convert_state_dict
    from ssld_zoo.catalogue.registry import get_model_entry
    base = get_model_entry(name).name
    if base not in PADDLE_MODELS:
        raise KeyError(f"no PaddleClas oracle is known for '{base}'")
    spec = PADDLE_MODELS[base]
    model = build_paddle_model(spec)
    state = paddle_state(spec, model, arrays)
    model.set_state_dict({key: paddle.to_tensor(value.astype(spec.dtype) if value.dtype.kind == "f" else value)
                          for key, value in state.items()})
    dtype = getattr(torch, spec.dtype)
    converted = convert_state_dict(arrays, name) if converted is None else converted
    zoo_model, zoo_features = zoo_models(base, {k: v.to(dtype) for k, v in converted.items()}, dtype)
    return CheckReport(name, compare_outputs(model, zoo_model, zoo_features, spec.stages, spec.sizes, spec.dtype,
                                             seed=seed))


def compare_outputs(paddle_model: Any, zoo_model: "torch.nn.Module", zoo_features: "torch.nn.Module",
                    stages: Sequence[str], sizes: Sequence[tuple[int, int]], dtype: str, *,
                    seed: int = 1) -> dict[str, float]:
    """The relative error (`relative_error`) of the zoo model's logits and feature stages against the PaddleClas
    model's (its sublayers `stages` hooked) on the same random inputs of every size; a missing stage counts inf."""
    import torch
    rng = np.random.default_rng(seed)
    errors: dict[str, float] = {}
    for height, width in sizes:
        x = rng.standard_normal((1, 3, height, width)).astype(dtype)
        ref_logits, ref_stages = paddle_outputs(paddle_model, stages, x)
        with torch.no_grad():
            logits = zoo_model(torch.from_numpy(x)).numpy()
            outs = [f.numpy() for f in zoo_features(torch.from_numpy(x))]
        errors[f"logits at {height}x{width}"] = relative_error(logits, ref_logits)
        if len(outs) != len(ref_stages):
            errors[f"feature stage count at {height}x{width}"] = float("inf")
            continue
        for i, (out, ref) in enumerate(zip(outs, ref_stages)):
            errors[f"feature stage {i} ({stages[i]}) at {height}x{width}"] = relative_error(out, ref)
    return errors
