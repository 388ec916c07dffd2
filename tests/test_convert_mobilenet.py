"""MobileNetV1 / V2 / V3: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, check_against_paddle

_V3 = "legendary_models.mobilenet_v3"
_V3_LARGE_STAGES = ["blocks.0", "blocks.2", "blocks.5", "blocks.11", "last_second_conv"]
_V3_SMALL_STAGES = ["conv", "blocks.0", "blocks.2", "blocks.7", "last_second_conv"]


@pytest.mark.parametrize("case", [
    Case("mobilenetv1_ssld", "legendary_models.mobilenet_v1", "MobileNetV1",
         ["blocks.0", "blocks.2", "blocks.4", "blocks.10", "blocks.12"]),
    Case("mobilenetv2_ssld", "model_zoo.mobilenet_v2", "MobileNetV2", ["conv2", "conv3", "conv4", "conv6", "conv8"]),
    Case("mobilenetv3_large_ssld", _V3, "MobileNetV3_large_x1_0", _V3_LARGE_STAGES),
], ids=str)
def test_matches_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    Case("mobilenetv3_small_ssld", _V3, "MobileNetV3_small_x1_0", _V3_SMALL_STAGES),
    Case("mobilenetv3_small_035_ssld", _V3, "MobileNetV3_small_x0_35", _V3_SMALL_STAGES),
], ids=str)
def test_other_sizes_match_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)
