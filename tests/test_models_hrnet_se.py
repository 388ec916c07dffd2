"""Tests for the Paddle-faithful SE-HRNet-W64-C (`ssld_zoo/models/hrnet_se.py`)."""
import copy

import pytest
import timm
import torch
from timm.models.resnet import BasicBlock, Bottleneck

import ssld_zoo.models.hrnet_se as hrnet_se

NAME = 'se_hrnet_w64c_ssld'
NUM_PARAMS = 128_991_264
PADDLE_PARAMS_M = 129.12
NUM_SE = 4 + 2 * 4 + 4 * 3 * 4 + 3 * 4 * 4 + 4  # stage 1, stages 2-4 (modules x branches x blocks), incre head
FEAT_CHS = [64, 128, 256, 512, 1024]
FEAT_RED = [2, 4, 8, 16, 32]


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return timm.create_model(NAME).eval()


@pytest.fixture(scope='module')
def features(model):
    m = timm.create_model(NAME, features_only=True).eval()
    m.load_state_dict(model.state_dict(), strict=False)
    return m


def test_registration():
    assert timm.list_models(NAME, include_tags=True) == [f'{NAME}.ssld_in1k']
    own = [n for n in timm.list_models() if timm.models.model_entrypoint(n).__module__ == hrnet_se.__name__]
    assert own == [NAME]
    assert {'hrnet_w18_ssld.paddle_in1k', 'hrnet_w48_ssld.paddle_in1k'} <= set(timm.list_pretrained('hrnet_w*'))
    cfg = timm.models.get_pretrained_cfg(f'{NAME}.ssld_in1k')
    assert (cfg.first_conv, cfg.classifier, cfg.crop_pct) == ('conv1', 'classifier', 0.875)


def test_param_count(model):
    n = sum(p.numel() for p in model.parameters())
    bn_stats = sum(b.numel() for k, b in model.named_buffers() if k.endswith(('running_mean', 'running_var')))
    assert n == NUM_PARAMS
    assert round((n + bn_stats) / 1e6, 2) == PADDLE_PARAMS_M
    head_convs = [model.final_layer[0]] + [d[0] for d in model.downsamp_modules]
    assert all(c.bias is None for c in head_convs)


def test_se_modules(model):
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == NUM_SE
    assert all(isinstance(b.se, hrnet_se.SqueezeExciteLinear) for b in blocks)
    se = model.incre_modules[3][0].se
    assert se.fc1.weight.shape == (64, 1024) and se.fc2.weight.shape == (1024, 64)
    assert model.stage2[0].branches[0][0].se.fc1.weight.shape == (4, 64)


def test_se_block_matches_paddle_formula(model):
    block = model.stage4[0].branches[1][0]
    c = block.bn2.num_features
    x = torch.randn(2, c, 5, 4)
    with torch.no_grad():
        res = block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x)))))
        pooled = res.mean((2, 3))
        gate = torch.sigmoid(block.se.fc2(torch.relu(block.se.fc1(pooled))))
        expected = torch.relu(x + res * gate[:, :, None, None])
        torch.testing.assert_close(block(x.clone()), expected)


def test_forward(model):
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_odd_size_limit_same_as_timm(model):
    # the nearest-upsample fuse needs ceil(H / 4) and ceil(W / 4) divisible by 8; stock timm HRNet shares this
    x = torch.randn(1, 3, 71, 53)
    ref = timm.create_model('hrnet_w18').eval()
    with torch.no_grad():
        for m in (model, ref):
            with pytest.raises(RuntimeError):
                m(x)


def test_features_only(model, features):
    assert isinstance(features, hrnet_se.SeHighResolutionNetFeatures)
    assert features.feature_info.channels() == FEAT_CHS
    assert features.feature_info.reduction() == FEAT_RED
    x = torch.randn(1, 3, 93, 61)
    with torch.no_grad():
        feats = features(x)
        final, inter = model.forward_intermediates(x)
        only = model.forward_intermediates(x, indices=[1, 4], intermediates_only=True)
        logits = model.forward_head(final)
    assert [f.shape[1] for f in feats] == FEAT_CHS
    assert [f.shape[2:] for f in feats] == [(47, 31), (24, 16), (12, 8), (6, 4), (3, 2)]
    assert final.shape == (1, 2048, 3, 2) and logits.shape == (1, 1000)
    for a, b in zip(feats, inter):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(only[1], feats[4])


def test_reset_classifier(model):
    m = copy.deepcopy(model)
    m.reset_classifier(10)
    assert m.get_classifier().out_features == 10
    with torch.no_grad():
        assert m.forward_head(torch.randn(1, 2048, 2, 2)).shape == (1, 10)
