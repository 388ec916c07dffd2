"""MobileNetV1 / V2 / V3: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, case_for, check_against_paddle


@pytest.mark.parametrize("case", [
    case_for("mobilenetv1_ssld"),
    case_for("mobilenetv2_ssld"),
    case_for("mobilenetv3_large_ssld"),
], ids=str)
def test_matches_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    case_for("mobilenetv3_small_ssld"),
    case_for("mobilenetv3_small_035_ssld"),
], ids=str)
def test_other_sizes_match_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)
