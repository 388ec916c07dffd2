"""PP-LCNet and PP-LCNetV2: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, case_for, check_against_paddle



def _lcnet(zoo_name: str, paddle_fn: str) -> Case:
    return case_for(zoo_name)


@pytest.mark.parametrize("case", [
    _lcnet("lcnet_100_ssld", "PPLCNet_x1_0"),
    case_for("lcnetv2_base_ssld"),
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
