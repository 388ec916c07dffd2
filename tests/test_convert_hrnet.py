"""HRNet_W18_C / W48_C and SE_HRNet_W64_C: converted PaddleClas weights compute what PaddleClas computes."""
import re
from pathlib import Path

import pytest

from paddle_oracle import Case, check_against_paddle, ppcls_backbone
from ssld_zoo.convert._base import to_torch_layout
from ssld_zoo.convert.hrnet import convert

# HRNet's fuse layers add nearest-upsampled lower-resolution branches to the higher ones, so ceil(H/4) and ceil(W/4)
# must be multiples of 8 for the branches to line up, in Paddle too (231x199 raises a broadcast error there). 253x189
# is odd in both directions and gives branches of 64x48 ... 8x6.
_SIZES = ((224, 224), (253, 189))
# timm's HRNet features: the stem's first conv (stride 2), then the four incre (Bottleneck) head outputs
_STAGES = ["conv_layer1_1"] + [f"last_cls.func_list.{i}" for i in range(4)]
# paddleclas 2.6 key -> the same layer's key in the earlier legendary hrnet.py (PaddleClas commit 014f1d1d)
_EARLY_NAMES = [(r"\.conv\.", "._conv."), (r"\.bn\.", "._batch_norm."), (r"^conv_(tr[1-3](?:_[12])?)\.", r"\1."),
                (r"\.se\.fc_(squeeze|excitation)\.", r".se.\1."), (r"^fc\.", "out.")]


def _early_legendary_key(key: str) -> str:
    for pattern, repl in _EARLY_NAMES:
        key = re.sub(pattern, repl, key)
    return key


def _case(zoo_name: str, paddle_fn: str, **kwargs) -> Case:
    return Case(zoo_name, "legendary_models.hrnet", paddle_fn, _STAGES, sizes=_SIZES, **kwargs)


def test_hrnet_w18c_matches_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(_case("hrnet_w18c_ssld", "HRNet_W18_C"), tmp_path)


def test_early_legendary_names_convert_alike() -> None:
    """Both legendary layouts (SE layers included) give the same timm state dict, array for array."""
    model = ppcls_backbone("legendary_models.hrnet").HRNet(width=18, has_se=True, stages_pattern=["st4"])
    arrays = {key: value.numpy() for key, value in model.state_dict().items()}
    early = {_early_legendary_key(key): value for key, value in arrays.items()}
    assert set(early).isdisjoint(arrays)  # every layer is renamed
    assert any(".se.squeeze." in key for key in early) and "out.weight" in early
    current = convert(to_torch_layout(arrays), "se_hrnet_w64c_ssld")
    previous = convert(to_torch_layout(early), "se_hrnet_w64c_ssld")
    assert current.keys() == previous.keys()
    assert all((current[key] == previous[key]).all() for key in current)


@pytest.mark.slow
def test_hrnet_w48c_early_legendary_names_match_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(_case("hrnet_w48c_ssld", "HRNet_W48_C", saved_key=_early_legendary_key), tmp_path)


@pytest.mark.slow
def test_se_hrnet_w64c_matches_paddleclas(tmp_path: Path) -> None:
    # paddleclas 2.6's SE_HRNet_W64_C() raises KeyError (its MODEL_URLS lacks the name): build its HRNet directly.
    # With random weights this 129M-parameter SE network saturates its gates and amplifies float32 rounding ~1e5x
    # (max rel. error ~0.1 at 224x224 in float32, 3e-10 in float64), hence the float64 comparison.
    kwargs = dict(width=64, has_se=True, stages_pattern=["st4"])
    check_against_paddle(_case("se_hrnet_w64c_ssld", "HRNet", paddle_kwargs=kwargs, dtype="float64"), tmp_path)
