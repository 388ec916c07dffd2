"""PaddleClas-faithful MobileNetV2 / MobileNetV3 / PP-LCNet variants: shapes, counts, features, Paddle semantics."""
from typing import Callable, Dict, List, Optional, Tuple

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models._efficientnet_blocks import InvertedResidual

import ssld_zoo.models.lcnet  # noqa: F401
import ssld_zoo.models.mobilenetv2  # noqa: F401
from ssld_zoo.models.mobilenetv3 import PaddleHardSigmoid

# name -> (torch parameter count, Paddle "Params" in M, feature channels)
MODELS: Dict[str, Tuple[int, float, List[int]]] = {
    'mobilenetv3_large_ssld': (5_480_206, 5.50, [16, 24, 40, 112, 960]),
    'mobilenetv3_small_ssld': (2_939_958, 2.95, [16, 16, 24, 48, 576]),
    'mobilenetv3_small_035_ssld': (1_665_954, 1.67, [8, 8, 8, 16, 200]),
    'mobilenetv2_ssld': (3_505_960, 3.54, [16, 24, 32, 96, 320]),
    'lcnet_025_ssld': (1_521_184, 1.52, [8, 16, 32, 64, 128]),
    'lcnet_250_ssld': (9_017_560, 9.04, [80, 160, 320, 640, 1280]),
}
REDUCTIONS = [2, 4, 8, 16, 32]
INPUTS = [(1, 3, 64, 64), (1, 3, 71, 53)]


def _randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Give every float tensor, BN statistics included, non-trivial values."""
    torch.manual_seed(0)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                is_var = key.endswith('running_var')
                value.copy_(torch.rand_like(value) + 0.5 if is_var else 0.3 * torch.randn_like(value))
    return model.eval()


@pytest.fixture(scope='module', params=list(MODELS))
def built(request: pytest.FixtureRequest) -> Tuple[str, torch.nn.Module]:
    name = request.param
    return name, _randomize_(timm.create_model(name))


def test_registered() -> None:
    for name in MODELS:
        assert timm.models.is_model(name)
        assert timm.models.get_pretrained_cfg(f'{name}.ssld_in1k').architecture == name


def test_param_counts(built: Tuple[str, torch.nn.Module]) -> None:
    name, model = built
    n_params = sum(p.numel() for p in model.parameters())
    n_bn_stats = sum(b.numel() for k, b in model.named_buffers() if k.endswith(('running_mean', 'running_var')))
    assert n_params == MODELS[name][0]
    assert round((n_params + n_bn_stats) / 1e6, 2) == MODELS[name][1]
    assert model.conv_head.bias is None
    assert model.pretrained_cfg['tag'] == 'ssld_in1k'


@torch.no_grad()
def test_forward_and_features(built: Tuple[str, torch.nn.Module]) -> None:
    name, model = built
    channels = MODELS[name][2]
    feat_model = timm.create_model(name, features_only=True).eval()
    assert feat_model.feature_info.channels() == channels
    assert feat_model.feature_info.reduction() == REDUCTIONS
    # features_only keeps the trunk in the same order, so copy the trunk weights positionally
    trunk = list(model.state_dict().values())[:len(feat_model.state_dict())]
    assert all(a.shape == b.shape for a, b in zip(feat_model.state_dict().values(), trunk))
    feat_model.load_state_dict(dict(zip(feat_model.state_dict(), trunk)))
    for shape in INPUTS:
        x = torch.randn(shape)
        logits = model(x)
        assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
        feats = feat_model(x)
        final, inter = model.forward_intermediates(x)
        assert torch.allclose(final, model.forward_features(x))
        assert len(feats) == len(inter) == 5
        for f, i, c, r in zip(feats, inter, channels, REDUCTIONS):
            assert f.shape == (1, c, -(-shape[2] // r), -(-shape[3] // r))
            assert torch.allclose(f, i)


def test_reset_classifier(built: Tuple[str, torch.nn.Module]) -> None:
    name = built[0]
    model = timm.create_model(name).eval()
    model.reset_classifier(10)
    assert model.get_classifier().out_features == 10
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_paddle_hard_sigmoid() -> None:
    x = torch.linspace(-4, 4, 81)
    assert torch.allclose(PaddleHardSigmoid()(x), torch.clamp(0.2 * x + 0.5, 0, 1))


def _paddle_mnv3_forward(model: torch.nn.Module, x: torch.Tensor, dropout: float = 0.2) -> torch.Tensor:
    """PaddleClas MobileNetV3 forward (mobilenet_v3.py) written out over the timm modules' weights."""
    def cbn(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d, y: torch.Tensor,
            act: Optional[Callable] = None) -> torch.Tensor:
        y = F.conv2d(y, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=1e-5)
        return act(y) if act is not None else y

    x = cbn(model.conv_stem, model.bn1, x, F.hardswish)
    for stage in model.blocks[:-1]:
        for blk in stage:
            act = F.relu if isinstance(blk.bn1.act, torch.nn.ReLU) else F.hardswish
            y = cbn(blk.conv_pw, blk.bn1, x, act)
            y = cbn(blk.conv_dw, blk.bn2, y, act)
            if not isinstance(blk.se, torch.nn.Identity):
                assert blk.se.conv_reduce.out_channels == y.shape[1] // 4
                s = F.relu(blk.se.conv_reduce(y.mean((2, 3), keepdim=True)))
                y = y * torch.clamp(0.2 * blk.se.conv_expand(s) + 0.5, 0, 1)
            y = cbn(blk.conv_pwl, blk.bn3, y)
            x = x + y if blk.conv_dw.stride == (1, 1) and x.shape == y.shape else y
    last = model.blocks[-1][0]
    x = cbn(last.conv, last.bn1, x, F.hardswish)
    x = F.hardswish(F.conv2d(x.mean((2, 3), keepdim=True), model.conv_head.weight)).flatten(1) * (1 - dropout)
    return F.linear(x, model.classifier.weight, model.classifier.bias)


@pytest.mark.parametrize('name', ['mobilenetv3_large_ssld', 'mobilenetv3_small_035_ssld'])
@torch.no_grad()
def test_mobilenetv3_matches_paddle_forward(name: str) -> None:
    model = _randomize_(timm.create_model(name))
    assert model.drop_rate == 0.2
    assert isinstance(model.blocks[0][0], InvertedResidual)  # 1x1 expand conv even at expansion 1
    x = torch.randn(1, 3, 71, 53)
    expected = _paddle_mnv3_forward(model, x)
    model.classifier.weight.mul_(1 - model.drop_rate)  # the converter's downscale_in_infer fold
    assert torch.allclose(model(x), expected, atol=1e-4, rtol=1e-4)

