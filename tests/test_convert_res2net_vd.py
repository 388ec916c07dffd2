"""Res2Net50/101/200_vd_26w_4s: converted PaddleClas weights compute what PaddleClas computes.

This also proves the zoo's Paddle-faithful block (`ssld_zoo/models/res2net_vd.py`): the hierarchical adds in
`layer1.0`, which timm's `Bottle2neck` skips, and the exclusive last-split pool of the stride-2 blocks, which the odd
input size exercises.
"""
from pathlib import Path

import pytest

from paddle_oracle import case_for, check_against_paddle

# Paddle tensors for the zoo's feature stages (`paddle_check.PADDLE_MODELS`): the stem after its third conv-BN-ReLU
# (timm `act1`, before the max pool) and the last block of each of the four stages (timm `layer1`..`layer4`).


def test_res2net50d_matches_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(case_for("res2net50d_ssld"), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["res2net101d_ssld", "res2net200d_ssld"])
def test_deeper_res2net_vd_matches_paddleclas(name: str, tmp_path: Path) -> None:
    check_against_paddle(case_for(name), tmp_path)
