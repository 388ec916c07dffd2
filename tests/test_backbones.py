"""Zoo models as detection/segmentation backbones, and per-stage learning-rate groups for every family."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ssld_zoo
from ssld_zoo.tools.backbones import LR_MULTS, fpn_backbone, split_stages, stage_param_groups

# one model per family; stage counts are stem + feature levels (PaddleClas's 5 for ResNet-vd, PP-HGNet, ...)
FAMILIES = {
    "resnet34d_ssld": 5, "res2net50d_ssld": 5, "hrnet_w18c_ssld": 5, "hgnet_tiny_ssld": 5, "hgnetv2_b0_ssld": 5,
    "mobilenetv1_ssld": 5, "mobilenetv2_ssld": 5, "mobilenetv3_small_035_ssld": 5, "ghostnet_130_ssld": 5,
    "lcnet_025_ssld": 5, "lcnetv2_base_ssld": 5, "resnet20_cifar": 4,
}
MULTS = (0.1, 0.2, 0.3, 0.4, 0.5)


def _meta(name: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return ssld_zoo.create(name, **kwargs)


def _group_of(groups: list[dict]) -> dict[int, dict]:
    """Parameter id -> its group (and no parameter in two groups)."""
    owner: dict[int, dict] = {}
    for group in groups:
        for p in group["params"]:
            assert id(p) not in owner, "a parameter is in two groups"
            owner[id(p)] = group
    return owner


def _last_level_param(model: torch.nn.Module) -> str:
    """A parameter inside the module of the model's last feature level, found by name."""
    levels = getattr(model.feature_info, "info", model.feature_info)  # a list, or a FeatureInfo for extractors
    module = levels[-1]["module"]
    names = [n for n, _ in model.named_parameters()]
    return next(n for n in names if n.startswith(f"{module}.") or n.startswith(f"{module.replace('.', '_')}."))


@pytest.mark.parametrize("features_only", [False, True], ids=["classifier", "features"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_stage_groups_cover_every_family(name: str, features_only: bool) -> None:
    model = _meta(name, features_only=features_only)
    count = FAMILIES[name]
    mults = MULTS[:count]
    groups = stage_param_groups(model, 0.01, mults, weight_decay=1e-4, head_lr_mult=2.0)
    owner = _group_of(groups)
    named = list(model.named_parameters())
    assert set(owner) == {id(p) for _, p in named}

    for group in groups:
        assert group["lr"] == pytest.approx(0.01 * group["lr_mult"]) and group["lr_scale"] == group["lr_mult"]
        assert group["weight_decay"] == (0.0 if group["name"].endswith("_no_decay") else 1e-4)
    assert all(owner[id(p)]["weight_decay"] == 0.0 for _, p in named if p.ndim <= 1)
    assert all(owner[id(p)]["weight_decay"] == 1e-4 for _, p in named if p.ndim > 1)

    params = dict(named)
    assert owner[id(named[0][1])]["lr_mult"] == mults[0]  # the stem (first parameter) gets the first multiplier
    assert owner[id(params[_last_level_param(model)])]["lr_mult"] == mults[-1]
    if not features_only:
        assert all(owner[id(p)]["lr_mult"] == 2.0 for p in model.get_classifier().parameters())

    stage_of = {n: i for i, stage in enumerate(split_stages(model).stages) for n in stage}
    order = [stage_of[n] for n, _ in named if n in stage_of]
    assert order == sorted(order) and set(order) == set(range(count)), "stages must follow the forward order"


def test_wrong_length_and_unknown_preset_fail_clearly() -> None:
    model = _meta("resnet20_cifar")
    with pytest.raises(ssld_zoo.SsldZooError, match="has 4 stages"):
        stage_param_groups(model, 0.1, LR_MULTS["classification"])
    with pytest.raises(ssld_zoo.SsldZooError, match="unknown lr_mults preset 'segmentation'"):
        stage_param_groups(model, 0.1, "segmentation")
    with pytest.raises(ssld_zoo.SsldZooError, match="holds no timm model"):
        stage_param_groups(torch.nn.Linear(2, 2), 0.1, MULTS)


def test_weight_decay_everywhere_and_frozen_parameters_left_out() -> None:
    model = _meta("mobilenetv3_small_035_ssld")
    model.conv_stem.weight.requires_grad_(False)
    groups = stage_param_groups(model, 0.1, "mobilenetv3", weight_decay=0.05, no_weight_decay_norm_bias=False)
    assert {g["weight_decay"] for g in groups} == {0.05}
    owner = _group_of(groups)
    assert id(model.conv_stem.weight) not in owner
    assert len(owner) == sum(p.requires_grad for p in model.parameters())


def test_truncated_feature_extractor_keeps_the_stage_count() -> None:
    model = _meta("resnet34d_ssld", features_only=True, out_indices=(1, 2))
    split = split_stages(model)
    assert [bool(s) for s in split.stages] == [True, True, True, False, False] and not split.head
    groups = stage_param_groups(model, 1.0, LR_MULTS["detection"])
    assert {g["name"] for g in groups} == {"stem", "stem_no_decay", "stage1", "stage1_no_decay", "stage2",
                                           "stage2_no_decay"}


def test_optimizer_step_scales_each_stage() -> None:
    torch.manual_seed(0)
    model = ssld_zoo.create("resnet20_cifar", num_classes=3)
    optimizer = torch.optim.SGD(stage_param_groups(model, 0.5, (0.1, 0.2, 0.3, 0.4), head_lr_mult=1.0), lr=123.0)
    model(torch.randn(2, 3, 16, 16)).logsumexp(1).sum().backward()
    watched = {"conv1.weight": 0.1, "layer1.0.conv1.weight": 0.2, "layer3.2.conv2.weight": 0.4, "linear.weight": 1.0}
    before = {n: (p.detach().clone(), p.grad.clone()) for n, p in model.named_parameters() if n in watched}
    optimizer.step()
    after = dict(model.named_parameters())
    for name, mult in watched.items():
        weight, grad = before[name]
        assert grad.abs().sum() > 0
        torch.testing.assert_close(after[name].detach(), weight - 0.5 * mult * grad)


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 20.0, 70.0, 60.0]]), "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[10.0, 10.0, 60.0, 44.0]]), "labels": torch.tensor([2])},
    ]


@pytest.mark.parametrize("name", ["mobilenetv3_small_035_ssld", "resnet34d_ssld"])
def test_faster_rcnn_trains_and_detects(name: str) -> None:
    from torchvision.models.detection import FasterRCNN
    torch.manual_seed(0)
    backbone = fpn_backbone(name, out_channels=32)
    assert backbone.out_channels == 32
    detector = FasterRCNN(backbone, num_classes=3, min_size=64, max_size=96, rpn_batch_size_per_image=32,
                          box_batch_size_per_image=32, representation_size=64)
    images = [torch.rand(3, 80, 96), torch.rand(3, 72, 64)]

    losses = detector(images, _targets())
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    sum(losses.values()).backward()
    grads = [p.grad for p in backbone.body.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert next(backbone.body.parameters()).grad.abs().sum() > 0  # the stem learns through the detector

    groups = stage_param_groups(detector, 0.02, LR_MULTS["detection"])
    owner = _group_of(groups)
    assert set(owner) == {id(p) for p in detector.parameters()}
    assert all(owner[id(p)]["lr_mult"] == 1.0 for p in detector.roi_heads.parameters())
    assert all(owner[id(p)]["lr_mult"] == 1.0 for p in backbone.fpn.parameters())
    assert owner[id(next(backbone.body.parameters()))]["lr_mult"] == 0.05
    torch.optim.SGD(groups, lr=0.02, momentum=0.9).step()

    detector.eval()
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2
    for det in detections:
        assert set(det) == {"boxes", "labels", "scores"} and det["boxes"].shape[1:] == (4,)


def test_fpn_outputs_follow_feature_info() -> None:
    backbone = fpn_backbone("hgnetv2_b0_ssld", out_channels=16)  # default: the last four levels
    features = backbone(torch.rand(1, 3, 64, 96))
    assert list(features) == ["0", "1", "2", "3", "pool"]
    assert [f.shape[-2:] for f in features.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(f.shape[1] == 16 for f in features.values())
    with pytest.raises(ssld_zoo.SsldZooError, match="has 4 feature levels"):
        fpn_backbone("hgnetv2_b0_ssld", out_indices=(1, 2, 3, 4))


def test_fpn_backbone_loads_the_zoo_weights() -> None:
    backbone = fpn_backbone("resnet20_cifar.sup_cifar10", pretrained=True, out_channels=8)
    classifier = ssld_zoo.create("resnet20_cifar.sup_cifar10", pretrained=True)
    body = dict(backbone.body.named_parameters())
    assert all(torch.equal(body[n], p) for n, p in classifier.named_parameters() if n in body)
    assert len(body) == len(list(classifier.parameters())) - 2  # all but the classifier's weight and bias
    assert list(backbone(torch.rand(1, 3, 32, 32))) == ["0", "1", "2", "3", "pool"]


@pytest.mark.parametrize("name", ["resnet20_cifar", "lcnet_025_ssld"])
def test_segmentation_head_on_features(name: str) -> None:
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead
    torch.manual_seed(0)
    body = ssld_zoo.create(name, features_only=True, out_indices=(-1,))
    head = DeepLabHead(body.feature_info.channels()[-1], num_classes=4)
    images = torch.rand(2, 3, 32, 48)
    logits = F.interpolate(head(body(images)[-1]), size=images.shape[-2:], mode="bilinear", align_corners=False)
    assert logits.shape == (2, 4, 32, 48)
    F.cross_entropy(logits, torch.randint(0, 4, (2, 32, 48))).backward()
    assert all(torch.isfinite(p.grad).all() for p in body.parameters())
    assert next(body.parameters()).grad.abs().sum() > 0
