"""PP-LCNet and PP-LCNetV2: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, check_against_paddle

_LCNET_STAGES = ["blocks2", "blocks3", "blocks4", "blocks5", "blocks6"]


def _lcnet(zoo_name: str, paddle_fn: str) -> Case:
    return Case(zoo_name, "legendary_models.pp_lcnet", paddle_fn, _LCNET_STAGES)


@pytest.mark.parametrize("case", [
    _lcnet("lcnet_100_ssld", "PPLCNet_x1_0"),
    Case("lcnetv2_base_ssld", "legendary_models.pp_lcnet_v2", "PPLCNetV2_base",
         ["stages.0", "stages.1", "stages.2", "stages.3"]),
], ids=str)
def test_matches_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    _lcnet("lcnet_025_ssld", "PPLCNet_x0_25"),
    _lcnet("lcnet_050_ssld", "PPLCNet_x0_5"),
    _lcnet("lcnet_250_ssld", "PPLCNet_x2_5"),
], ids=str)
def test_other_sizes_match_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)
