"""PP-HGNet tiny/small/base and PP-HGNetV2 B0-B6: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, case_for, check_against_paddle

# B0-B3 (use_lab=True): a negative stem1 affine bias makes the stem1 output negative wherever its ReLU is 0, which is
# where Paddle's SAME-padded stem max-pool (padding never wins) and timm's zero-padded one differ at the last row and
# column; random weights give this bias a positive sign, so it is set, to prove the zoo architecture's pool
_NEGATIVE_STEM_LAB = {"stem.stem1.lab.bias": -0.5}


def _hgnet(size: str) -> Case:
    return case_for(f"hgnet_{size}_ssld")


def _hgnetv2(b: int) -> Case:
    return case_for(f"hgnetv2_b{b}_ssld", paddle_fill=_NEGATIVE_STEM_LAB if b <= 3 else {})


@pytest.mark.parametrize("case", [_hgnet("tiny"), _hgnetv2(0)], ids=str)
def test_matches_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [_hgnet("small"), _hgnet("base")] + [_hgnetv2(b) for b in range(1, 7)], ids=str)
def test_other_sizes_match_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)
