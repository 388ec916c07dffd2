"""ResNet34/50/101_vd: converted PaddleClas weights compute what PaddleClas computes."""
import dataclasses
import re
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


_OLD_LAYER = {"conv": "_conv", "bn": "_batch_norm"}
_R50_BLOCKS = [(stage, index) for stage, depth in enumerate((3, 4, 6, 3)) for index in range(depth)]


def _old_dygraph_key(key: str) -> str:
    """The structured key that the pre-legendary dygraph ResNet50_vd gives the weight legendary ResNet50_vd calls `key`.

    Source: PaddlePaddle/PaddleClas `ppcls/arch/backbone/model_zoo/resnet_vd.py` at commit
    d8def84624e4e420e423c7f0636bb6de6b1cc931, the dygraph `ResNet_vd` that predates `legendary_models/resnet.py` and
    whose naming the older `dygraph/ResNet50_vd_ssld_v2` and `Fix_ResNet50_vd_ssld_v2` files are expected to use (no
    such file was available to list its keys). It computes the legendary network (3x3 stem 32-32-64 with BN+ReLU,
    max pool 3/2/1, stride on the 3x3 conv, vd shortcut = exclusive `AvgPool2D(2, 2, 0, ceil_mode=True)` + 1x1 conv
    + BN, projection shortcut on the first block of every stage) under other names: attributes `conv1_1`..`conv1_3`
    for the stem; `self.add_sublayer('bb_%d_%d' % (block, i), BottleneckBlock(...))` per block (the `res4b{i}` names
    of the 101-layer third stage are static parameter names only, not structured keys); `conv0`/`conv1`/`conv2`/`short`
    inside a block; `_conv` / `_batch_norm` inside every `ConvBNLayer`; `self.out = Linear(...)` for the classifier.
    """
    stem = re.fullmatch(r"stem\.(\d)\.(conv|bn)\.(\w+)", key)
    if stem:
        return f"conv1_{int(stem[1]) + 1}.{_OLD_LAYER[stem[2]]}.{stem[3]}"
    block = re.fullmatch(r"blocks\.(\d+)\.(conv[0-2]|short)\.(conv|bn)\.(\w+)", key)
    if block:
        stage, index = _R50_BLOCKS[int(block[1])]
        return f"bb_{stage}_{index}.{block[2]}.{_OLD_LAYER[block[3]]}.{block[4]}"
    head = re.fullmatch(r"fc\.(weight|bias)", key)
    assert head, f"unexpected legendary ResNet50_vd key {key}"
    return f"out.{head[1]}"


def test_old_dygraph_naming_matches_paddleclas(tmp_path: Path) -> None:
    """A ResNet50_vd file in the older dygraph naming (`conv1_1._conv.weight`, `bb_0_0.short._batch_norm._mean`,
    `out.weight`, ...) converts to `resnet50d_ssld` and computes what PaddleClas computes. paddleclas 2.6 no longer
    ships that model, so the legendary one is saved under the old keys (`_old_dygraph_key`)."""
    case = dataclasses.replace(_case("resnet50d_ssld", "ResNet50_vd"), saved_key=_old_dygraph_key)
    check_against_paddle(case, tmp_path)
