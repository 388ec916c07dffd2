"""HRNet_W18_C / W48_C and SE_HRNet_W64_C: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import case_for, check_against_paddle, ppcls_backbone

from ssld_zoo.convert.paddle_check import early_legendary_hrnet_key
from ssld_zoo.convert._base import to_torch_layout
from ssld_zoo.convert.hrnet import convert

# HRNet's sizes (`paddle_check.HRNET_SIZES`): ceil(H/4) and ceil(W/4) must be multiples of 8 for the fuse layers'
# branches to line up, in Paddle too; 253x189 is odd in both directions and gives branches of 64x48 ... 8x6.


def test_hrnet_w18c_matches_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(case_for("hrnet_w18c_ssld"), tmp_path)


def test_early_legendary_names_convert_alike() -> None:
    """Both legendary layouts (SE layers included) give the same timm state dict, array for array."""
    model = ppcls_backbone("legendary_models.hrnet").HRNet(width=18, has_se=True, stages_pattern=["st4"])
    arrays = {key: value.numpy() for key, value in model.state_dict().items()}
    early = {early_legendary_hrnet_key(key): value for key, value in arrays.items()}
    assert set(early).isdisjoint(arrays)  # every layer is renamed
    assert any(".se.squeeze." in key for key in early) and "out.weight" in early
    current = convert(to_torch_layout(arrays), "se_hrnet_w64c_ssld")
    previous = convert(to_torch_layout(early), "se_hrnet_w64c_ssld")
    assert current.keys() == previous.keys()
    assert all((current[key] == previous[key]).all() for key in current)


@pytest.mark.slow
def test_hrnet_w48c_early_legendary_names_match_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(case_for("hrnet_w48c_ssld", saved_key=early_legendary_hrnet_key), tmp_path)


@pytest.mark.slow
def test_se_hrnet_w64c_matches_paddleclas(tmp_path: Path) -> None:
    # paddleclas 2.6's SE_HRNet_W64_C() raises KeyError (its MODEL_URLS lacks the name): build its HRNet directly.
    # With random weights this 129M-parameter SE network saturates its gates and amplifies float32 rounding ~1e5x
    # (max rel. error ~0.1 at 224x224 in float32, 3e-10 in float64), hence the float64 comparison.
    check_against_paddle(case_for("se_hrnet_w64c_ssld"), tmp_path)
