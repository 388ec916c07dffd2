"""GhostNet_x1_3: converted PaddleClas weights compute what PaddleClas computes in stock timm `ghostnet_130`.

The check covers every fold of `ssld_zoo/convert/ghostnet.py`: the SE blocks (zero-padded reduce width, clip gate
folded into timm's hard-sigmoid) in the stride-8, -16 and -32 blocks, and the BatchNorm folded into `conv_head`.
"""
from pathlib import Path

import numpy as np

from paddle_oracle import build_paddle_model, case_for, check_against_paddle

def test_ghostnet_130_matches_paddleclas(tmp_path: Path) -> None:
    """timm's GhostNet feature stages (`feature_info`) are its stem conv before BatchNorm and ReLU (`conv_stem`) and
    the output of the first block at each new stride (`blocks.1`, `.3`, `.5`, `.7`): the same Paddle tensors."""
    check_against_paddle(case_for("ghostnet_130_ssld"), tmp_path)


# timm ghostnet_130 `blocks.{stage}.{i}` of Paddle `_ghostbottleneck_{k}`, k = 0..15
_TIMM_BLOCKS = [(stage, i) for stage, depth in enumerate((1, 1, 1, 1, 1, 1, 5, 1, 4)) for i in range(depth)]


def test_se_padding_is_exact() -> None:
    """The SE channels timm has beyond Paddle's `mid // 4` get zero reduce rows and biases and zero expand columns, so
    they are ReLU(0) = 0 and add nothing to the gate; the channels Paddle has keep its weights."""
    from ssld_zoo.convert import convert_state_dict
    model = build_paddle_model(case_for("ghostnet_130_ssld"))
    weights = {key: value.numpy() for key, value in model.state_dict().items()}
    converted = {key: value.numpy() for key, value in convert_state_dict(weights, "ghostnet_130_ssld").items()}
    padded = 0
    for k, (stage, i) in enumerate(_TIMM_BLOCKS):
        squeeze = weights.get(f"_ghostbottleneck_{k}.se_block.squeeze.weight")  # Paddle Linear: [in, reduce]
        if squeeze is None:
            continue
        width = squeeze.shape[1]
        se = f"blocks.{stage}.{i}.se"
        reduce_w, reduce_b = converted[f"{se}.conv_reduce.weight"][:, :, 0, 0], converted[f"{se}.conv_reduce.bias"]
        expand_w = converted[f"{se}.conv_expand.weight"][:, :, 0, 0]
        np.testing.assert_array_equal(reduce_w[:width], squeeze.T)
        np.testing.assert_array_equal(reduce_b[:width], weights[f"_ghostbottleneck_{k}.se_block.squeeze.bias"])
        assert not reduce_w[width:].any() and not reduce_b[width:].any() and not expand_w[:, width:].any()
        padded += reduce_w.shape[0] - width
    assert padded == 1 + 1 + 2 + 2  # 23→24, 39→40, 218→220 in two blocks
