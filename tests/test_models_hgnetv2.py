"""Tests for the Paddle-faithful PP-HGNetV2 B0-B3 (ssld_zoo.models.hgnetv2)."""
import copy

import pytest
import timm
import torch

import ssld_zoo.models.hgnetv2 as hgnetv2

NAMES = [f'hgnetv2_b{i}_ssld' for i in range(4)]
CHANNELS = {'hgnetv2_b0_ssld': [64, 256, 512, 1024], 'hgnetv2_b1_ssld': [64, 256, 512, 1024],
            'hgnetv2_b2_ssld': [96, 384, 768, 1536], 'hgnetv2_b3_ssld': [128, 512, 1024, 2048]}


@pytest.fixture(scope='module', params=NAMES)
def built(request):
    """(name, eval-mode zoo model, eval-mode stock timm model with the same weights)."""
    name = request.param
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    stock = timm.create_model(name.removesuffix('_ssld')).eval()
    stock.load_state_dict(model.state_dict())
    return name, model, stock


def test_registration():
    assert sorted(timm.list_models(module='hgnetv2')) == NAMES
    for name in NAMES:
        cfg = timm.models.get_pretrained_cfg(f'{name}.ssld_stage2_ft_in1k')
        assert (cfg.first_conv, cfg.classifier, cfg.pool_size) == ('stem.stem1.conv', 'head.fc', (7, 7))
        assert timm.models.get_pretrained_cfg(f'{name}.ssld_stage1_in22k_in1k') is not None
    # B4-B6 have no learnable affine blocks, so they stay on stock timm
    assert timm.models.model_entrypoint('hgnetv2_b4_ssld').__module__ == 'ssld_zoo.models._stock'


def test_same_weights_as_stock(built):
    _, model, stock = built
    assert isinstance(model.stem, hgnetv2.StemV2Paddle)
    assert model.state_dict().keys() == stock.state_dict().keys()


def test_stem_pool_ignores_its_padding(built):
    model, stock = copy.deepcopy(built[1:])
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        # LAB bias >= 0: the stem1 output is >= 0, zero padding never wins the max, both stems agree
        model.stem.stem1.lab.bias.fill_(0.1)
        stock.stem.stem1.lab.bias.fill_(0.1)
        torch.testing.assert_close(model.stem(x), stock.stem(x))
        # LAB bias < 0: timm's zero padding wins the max at the last row / column, Paddle's padding never does
        model.stem.stem1.lab.bias.fill_(-0.5)
        stock.stem.stem1.lab.bias.fill_(-0.5)
        assert not torch.allclose(model.stem(x), stock.stem(x))


def test_features_only(built):
    name, model, _ = built
    features = timm.create_model(name, features_only=True).eval()
    assert features.feature_info.channels() == CHANNELS[name]
    assert features.feature_info.reduction() == [4, 8, 16, 32]
    x = torch.randn(1, 3, 71, 53)
    with torch.no_grad():
        feats = features(x)
        inter = model.forward_intermediates(x, intermediates_only=True)
    assert [f.shape[1] for f in feats] == CHANNELS[name]
    assert isinstance(features.stem, hgnetv2.StemV2Paddle)
    for f, i in zip(feats, inter):
        assert f.shape == i.shape


def test_reset_classifier(built):
    _, model, _ = built
    m = copy.deepcopy(model)
    m.reset_classifier(10)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 10)
