"""ResNet34/50/101_vd: converted PaddleClas weights compute what PaddleClas computes."""
from pathlib import Path

import pytest

from paddle_oracle import Case, check_against_paddle

_STAGES = {
    "ResNet34_vd": ["stem", "blocks.2", "blocks.6", "blocks.12", "blocks.15"],
    "ResNet50_vd": ["stem", "blocks.2", "blocks.6", "blocks.12", "blocks.15"],
    "ResNet101_vd": ["stem", "blocks.2", "blocks.6", "blocks.29", "blocks.32"],
}


def _case(zoo_name: str, paddle_fn: str) -> Case:
    return Case(zoo_name, "legendary_models.resnet", paddle_fn, _STAGES[paddle_fn])


@pytest.mark.parametrize("case", [_case("resnet50d_ssld", "ResNet50_vd"), _case("resnet34d_ssld", "ResNet34_vd")],
                         ids=str)
def test_matches_paddleclas(case: Case, tmp_path: Path) -> None:
    check_against_paddle(case, tmp_path)


@pytest.mark.slow
def test_resnet101_vd_matches_paddleclas(tmp_path: Path) -> None:
    check_against_paddle(_case("resnet101d_ssld", "ResNet101_vd"), tmp_path)
