"""ResNet34/50/101_vd: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, case_for, check_against_paddle

from ssld_zoo.convert.paddle_check import old_dygraph_resnet50_vd_key


@pytest.mark.parametrize("case", [case_for("resnet50d_ssld"), case_for("resnet34d_ssld")], ids=str)
def test_matches_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)


@pytest.mark.slow
def test_resnet101_vd_matches_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(case_for("resnet101d_ssld"), tmp_path)


def test_old_dygraph_naming_matches_paddleclas(tmp_path: Path) -> None:
    """A ResNet50_vd file in the older dygraph naming (`conv1_1._conv.weight`, `bb_0_0.short._batch_norm._mean`,
    `out.weight`, ...) converts to `resnet50d_ssld` and computes what PaddleClas computes. paddleclas 2.6 no longer
    ships that model, so the legendary one is saved under the old keys (`old_dygraph_resnet50_vd_key`)."""
    check_against_paddle(case_for("resnet50d_ssld", saved_key=old_dygraph_resnet50_vd_key), tmp_path)
