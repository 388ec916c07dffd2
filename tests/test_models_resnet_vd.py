"""Tests for the Paddle-faithful ResNet34_vd and Res2Net_vd families (ssld_zoo.models.resnet_vd / res2net_vd)."""
import pytest
import timm
import torch

import ssld_zoo.models.res2net_vd as res2net_vd
import ssld_zoo.models.resnet_vd as resnet_vd

# name -> (torch parameters, torch parameters + BN running stats in millions as PaddleClas publishes it)
# res2net50d_ssld: PaddleClas's SSLD table says 25.76 and its Res2Net page 25.06; the shapes of
# model_zoo/res2net_vd.py give 25,777,972 floats, so 25.78 is asserted (101/200 match their published numbers).
PARAMS = {
    'resnet34d_ssld': (21_821_128, 21.84),
    'res2net50d_ssld': (25_718_352, 25.78),
    'res2net101d_ssld': (45_225_920, 45.35),
    'res2net200d_ssld': (76_215_536, 76.44),
}
CHANNELS = {
    'resnet34d_ssld': [64, 64, 128, 256, 512],
    'res2net50d_ssld': [64, 256, 512, 1024, 2048],
    'res2net101d_ssld': [64, 256, 512, 1024, 2048],
    'res2net200d_ssld': [64, 256, 512, 1024, 2048],
}
REDUCTIONS = [2, 4, 8, 16, 32]
NAMES = list(PARAMS)


@pytest.fixture(scope='module', params=NAMES)
def built(request):
    """(name, eval-mode classifier, eval-mode features_only model), each built once per module."""
    name = request.param
    model = timm.create_model(name).eval()
    features = timm.create_model(name, features_only=True).eval()
    return name, model, features


def _bn_stats(model: torch.nn.Module) -> int:
    return sum(v.numel() for k, v in model.state_dict().items() if k.endswith(('running_mean', 'running_var')))


def test_registration():
    assert timm.list_models(module='resnet_vd') == ['resnet34d_ssld']
    assert sorted(timm.list_models(module='res2net_vd')) == ['res2net101d_ssld', 'res2net200d_ssld', 'res2net50d_ssld']
    for name in NAMES:
        cfg = timm.models.get_pretrained_cfg(f'{name}.ssld_in1k')
        assert cfg is not None and cfg.first_conv == 'conv1.0' and cfg.classifier == 'fc'
        assert cfg.pool_size == (7, 7) and cfg.num_classes == 1000
    # timm's own tags for the stock relatives stay intact
    assert timm.list_pretrained('resnet34d.*') and timm.list_pretrained('res2net50d.*')


def test_param_count(built):
    name, model, _ = built
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == PARAMS[name][0]
    assert round((n_params + _bn_stats(model)) / 1e6, 2) == PARAMS[name][1]


@pytest.mark.parametrize('shape', [(1, 3, 64, 64), (1, 3, 71, 53)])
def test_forward(built, shape):
    _, model, _ = built
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_features_only_matches_intermediates(built):
    name, model, features = built
    assert features.feature_info.channels() == CHANNELS[name]
    assert features.feature_info.reduction() == REDUCTIONS
    missing, unexpected = model.load_state_dict(features.state_dict(), strict=False)
    assert set(missing) == {'fc.weight', 'fc.bias'} and not unexpected
    x = torch.randn(1, 3, 71, 53)
    with torch.no_grad():
        feats = features(x)
        inter = model.forward_intermediates(x, intermediates_only=True)
    assert len(feats) == len(inter) == 5
    for f, i, c in zip(feats, inter, CHANNELS[name]):
        assert f.shape == i.shape and f.shape[1] == c
        torch.testing.assert_close(f, i)
    assert [f.shape[-2:] for f in feats][-1] == (3, 2)


def test_reset_classifier(built):
    _, model, _ = built
    model.reset_classifier(10)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
        model.reset_classifier(0)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, model.num_features)
    model.reset_classifier(1000)


def test_resnet34d_first_short_conv():
    model = timm.create_model('resnet34d_ssld')
    assert isinstance(model, resnet_vd.ResNetVd)
    short = model.layer1[0].downsample
    assert isinstance(short[0], torch.nn.Identity)
    assert short[1].weight.shape == (64, 64, 1, 1) and short[2].num_features == 64
    assert all(block.downsample is None for block in model.layer1[1:])
    stock = set(timm.create_model('resnet34d').state_dict())
    extra = set(model.state_dict()) - stock
    assert extra == {f'layer1.0.downsample.{k}' for k in (
        '1.weight', '2.weight', '2.bias', '2.running_mean', '2.running_var', '2.num_batches_tracked')}
    assert not stock - set(model.state_dict())


def test_res2net_block_flags():
    model = timm.create_model('res2net50d_ssld')
    first = model.layer1[0]
    assert isinstance(first, res2net_vd.Bottle2neckVd)
    assert not first.is_first and first.pool is None and first.downsample is not None
    for stage in (model.layer2, model.layer3, model.layer4):
        assert stage[0].is_first and stage[0].pool.count_include_pad is False
        assert not stage[1].is_first


def test_res2net_differs_from_stock_timm_in_layer1():
    torch.manual_seed(0)
    ours = timm.create_model('res2net50d_ssld').eval()
    with torch.no_grad():  # undo zero_init_last so the residual branch reaches the output
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    stock = timm.create_model('res2net50d').eval()
    stock.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = ours.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        b = stock.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1], atol=1e-4)
