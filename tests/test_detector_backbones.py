"""Zoo backbones in detectors (issue 24), each proven against the consumer's own code from the package registry.

- Export: every layout loads strictly into the consumer's class (libreyolo's copy of RT-DETR's PResNet and of
  RT-DETRv2's HGNetv2, pydfine's and libreyolo's copies of D-FINE/DEIM's HGNetv2, transformers' RTDetrResNetBackbone
  and HGNetV2Backbone), and every returned stage equals the zoo's `features_only` output to 1e-5 relative error at
  640x640 and at an odd size, with random weights and random BatchNorm statistics, read through `create(pretrained=
  FILE)`, the verified path.
- No export: transformers' RTDetrForObjectDetection and DFineForObjectDetection build, run forward and backward with
  a zoo timm backbone from `detector_config`, with zoo weights loaded by `load_backbone_weights`; and one trains.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import ssld_zoo
from ssld_zoo.errors import DetectorBackboneError, FileSystemError, OfflineError, UnknownModelError
from ssld_zoo.tools.detector_backbones import LAYOUTS, PRESNET_FILES, export_backbone, fitting_weights
from ssld_zoo.tools.detector_configs import detector_config, detector_levels, load_backbone_weights

SIZES = (640, 161)  # the detectors' training size, and an odd size (ceil-mode pools, odd feature maps)
R50, R34 = "resnet50d_ssld.ssld_v2_in1k", "resnet34d_ssld.ssld_in1k"
B0, B4 = "hgnetv2_b0_ssld.ssld_stage1_in22k_in1k", "hgnetv2_b4_ssld.ssld_stage1_in22k_in1k"


def random_source(weight: str, folder: Path, *, stem_lab_bias: float | None = 0.25, seed: int = 0) -> Path:
    """A safetensors file of the zoo model with random weights, BatchNorm statistics and learnable affine blocks
    (timm's init leaves BN at the identity and LAB at scale 1, bias 0), so every tensor reaches the output.

    PaddleClas (and the zoo) pad the PP-HGNetV2 stem's max-pool with -inf, D-FINE and transformers with zeros; the
    two agree while the pooled stem output is >= 0, so `stem_lab_bias` (>= 0 by default) sets the stem1 LAB bias
    (`test_hgnetv2_stem_pool_padding_differs_from_paddle` covers a negative one)."""
    generator = torch.Generator().manual_seed(seed)
    model = ssld_zoo.create(weight).eval()
    uniform = lambda t, low, high: t.copy_(torch.rand(t.shape, generator=generator) * (high - low) + low)  # noqa: E731
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_mean", "lab.bias")) or (name.endswith("bias") and tensor.ndim == 1):
                uniform(tensor, -0.5, 0.5)
            elif name.endswith(("running_var", "lab.scale")) or (name.endswith("weight") and tensor.ndim == 1):
                uniform(tensor, 0.5, 1.5)
            elif name.endswith("weight"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5)
        stem_lab = getattr(getattr(getattr(model, "stem", None), "stem1", None), "lab", None)
        if stem_lab_bias is not None and isinstance(getattr(stem_lab, "bias", None), torch.Tensor):
            stem_lab.bias.fill_(stem_lab_bias)
    path = folder / f"{weight}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def zoo_model(weight: str, source: Path, out_indices: tuple[int, ...]) -> torch.nn.Module:
    """The zoo's feature extractor with the weights in `source`, read through `create(pretrained=FILE)`."""
    return ssld_zoo.create(weight, pretrained=source, features_only=True, out_indices=out_indices).eval()


def zoo_features(weight: str, source: Path, out_indices: tuple[int, ...], x: torch.Tensor) -> list[torch.Tensor]:
    return consumer_features(zoo_model(weight, source, out_indices), x)


def assert_same_features(expected: list[torch.Tensor], actual: list[torch.Tensor] | tuple[torch.Tensor, ...],
                         what: str) -> None:
    """Every stage: the same shape, and max |a - b| <= 1e-5 max |a|."""
    assert len(actual) == len(expected), what
    for level, (a, b) in enumerate(zip(expected, actual)):
        assert a.shape == b.shape, (what, level, a.shape, b.shape)
        error = float((a - b).abs().max() / a.abs().max())
        assert error <= 1e-5, (what, level, error)


def load_strict(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return model.eval()


def consumer_features(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = model(x)
    return list(getattr(out, "feature_maps", out))


def hf_backbone(folder: Path) -> torch.nn.Module:
    """The exported folder through transformers. The concrete class's `from_pretrained`: `AutoBackbone.from_pretrained`
    asks the Hub whether a path is a repo before it looks at the disk (transformers 5.25), and fails offline."""
    from transformers import AutoConfig, HGNetV2Backbone, RTDetrResNetBackbone
    config = AutoConfig.from_pretrained(folder)
    cls = RTDetrResNetBackbone if config.model_type == "rt_detr_resnet" else HGNetV2Backbone
    return cls.from_pretrained(folder).eval()


@pytest.mark.parametrize("weight,depth", [(R50, 50), (R34, 34)], ids=["R50", "R34"])
def test_presnet_and_rtdetr_resnet_return_the_zoo_features(weight: str, depth: int, tmp_path: Path) -> None:
    """ResNet_vd into RT-DETR's PResNet (with its FrozenBatchNorm2d, as RT-DETR's R50 config builds it) and into
    transformers' RTDetrResNetBackbone. R34 carries PaddleClas's 64->64 projection in the first block."""
    from libreyolo.models.rtdetr.backbone import PResNet
    source = random_source(weight, tmp_path)
    presnet = export_backbone(weight, "presnet", tmp_path / "presnet", pretrained=source)
    hf = export_backbone(weight, "hf", tmp_path / "hf", pretrained=source)
    assert presnet.files[0].name == PRESNET_FILES[depth]
    # CI time: 640 px for R50 in PResNet; the hf layout meets 640 px in HGNetV2Backbone's test below
    checks = [("PResNet", load_strict(PResNet(depth, return_idx=[1, 2, 3], freeze_norm=True), presnet.files[0]),
               SIZES if depth == 50 else SIZES[1:]),
              ("RTDetrResNetBackbone", hf_backbone(hf.folder), SIZES[1:])]
    zoo = zoo_model(weight, source, (2, 3, 4))
    for size in SIZES if depth == 50 else SIZES[1:]:
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        expected = consumer_features(zoo, x)
        for name, model, sizes in checks:
            if size in sizes:
                assert_same_features(expected, consumer_features(model, x), f"{name} {size}px")


def test_dfine_and_hf_hgnetv2_return_the_zoo_features(tmp_path: Path) -> None:
    """PP-HGNetV2-B0 (with LAB) into pydfine's and libreyolo's copies of D-FINE/DEIM's HGNetv2 and transformers'
    HGNetV2Backbone."""
    from dfine.backends.native.hgnetv2 import HGNetv2 as PydfineHGNetv2
    from libreyolo.models.deim.backbone import HGNetv2 as DeimHGNetv2
    source = random_source(B0, tmp_path)
    dfine = export_backbone(B0, "hgnetv2-dfine", tmp_path / "dfine", pretrained=source)
    hf = export_backbone(B0, "hf", tmp_path / "hf", pretrained=source)
    assert dfine.files[0].name == "PPHGNetV2_B0_stage1.pth"
    consumers = {
        "pydfine HGNetv2": load_strict(PydfineHGNetv2("B0", use_lab=True, return_idx=[1, 2, 3], pretrained=False),
                                       dfine.files[0]),
        "DEIM HGNetv2": load_strict(DeimHGNetv2("B0", use_lab=True, return_idx=[1, 2, 3], pretrained=False),
                                    dfine.files[0]),
        "HGNetV2Backbone": hf_backbone(hf.folder)}
    zoo = zoo_model(B0, source, (1, 2, 3))
    for size in SIZES:
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        expected = consumer_features(zoo, x)
        for name, model in consumers.items():
            assert_same_features(expected, consumer_features(model, x), f"{name} {size}px")


def test_rtdetrv2_hgnetv2_returns_the_zoo_features(tmp_path: Path) -> None:
    """PP-HGNetV2-B4 into libreyolo's copy of RT-DETRv2's HGNetv2 "L" (PaddleDetection names, frozen BatchNorm)."""
    from libreyolo.models.rtdetr.hgnetv2 import HGNetv2
    source = random_source(B4, tmp_path)
    export = export_backbone(B4, "hgnetv2-rtdetrv2", tmp_path / "out", pretrained=source)
    assert export.files[0].name == "PPHGNetV2_L_ssld_pretrained_from_paddle.pth"
    model = load_strict(HGNetv2("L", return_idx=[1, 2, 3], freeze_at=0, freeze_norm=True), export.files[0])
    zoo = zoo_model(B4, source, (1, 2, 3))
    for size in SIZES:
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        assert_same_features(consumer_features(zoo, x), consumer_features(model, x), f"{size}px")


def test_hgnetv2_stem_pool_padding_differs_from_paddle(tmp_path: Path) -> None:
    """With a negative stem LAB bias, D-FINE's HGNetv2 (zero-padded stem pool, as timm's stock `hgnetv2_b0` and
    transformers) differs from the zoo's PaddleClas-exact model, and equals stock timm: the export carries the same
    tensors, the consumer computes the stem border differently (docs/detection.md, traps)."""
    import timm
    from dfine.backends.native.hgnetv2 import HGNetv2
    source = random_source(B0, tmp_path, stem_lab_bias=-0.5)
    export = export_backbone(B0, "hgnetv2-dfine", tmp_path / "out", pretrained=source)
    dfine = load_strict(HGNetv2("B0", use_lab=True, return_idx=[1, 2, 3], pretrained=False), export.files[0])
    stock = timm.create_model("hgnetv2_b0", pretrained=True, pretrained_cfg_overlay={"file": str(source)},
                              features_only=True, out_indices=(1, 2, 3)).eval()
    x = torch.rand(1, 3, 161, 161, generator=torch.Generator().manual_seed(1))
    actual = consumer_features(dfine, x)
    assert_same_features(consumer_features(stock, x), actual, "stock timm hgnetv2_b0")
    paddle_exact = zoo_features(B0, source, (1, 2, 3), x)
    assert float((paddle_exact[0] - actual[0]).abs().max() / paddle_exact[0].abs().max()) > 1e-3


def test_command_writes_the_files_and_readme(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`ssld-zoo backbone`: the .pth and .safetensors files hold the same tensors (no classifier, no
    num_batches_tracked); the README names the source, its sha256, the files' sha256 and the config values; without a
    tag the consumer's own weight is taken (D-FINE: stage 1, where the catalogue's default is stage 2)."""
    from ssld_zoo.cli import main
    from ssld_zoo.files import file_sha256
    source = random_source(B0, tmp_path)
    out = tmp_path / "weight" / "hgnetv2"
    assert main(["backbone", "hgnetv2_b0_ssld", "--for", "hgnetv2-dfine", "--out", str(out), "--weights",
                 str(source)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{B0} -> hgnetv2-dfine (D-FINE, DEIM and DEIMv2 HGNetv2), 270 tensors:"), printed
    pth, safetensors, readme = (out / name for name in ("PPHGNetV2_B0_stage1.pth", "PPHGNetV2_B0_stage1.safetensors",
                                                         "README.md"))
    assert sorted(p.name for p in out.iterdir()) == sorted([pth.name, safetensors.name, readme.name])
    assert all(str(p) in printed for p in (pth, safetensors, readme))
    state, same = torch.load(pth, weights_only=True), load_file(safetensors)
    assert state.keys() == same.keys() and all(torch.equal(state[k], same[k]) for k in state)
    assert not any(k.startswith("head") or k.endswith("num_batches_tracked") for k in state)
    text = readme.read_text()
    for part in (B0, file_sha256(source), file_sha256(pth), "name: B0, use_lab: True, return_idx: [1, 2, 3]",
                 "[256, 512, 1024]", "weight/hgnetv2/", "tests/test_detector_backbones.py", "[0, 1]",
                 "pad it with zeros"):
        assert part in text, part


def test_every_fitting_pair_and_only_those(tmp_path: Path) -> None:
    """PResNet takes the three ResNet_vd weights, D-FINE all seven PP-HGNetV2 sizes, RT-DETRv2 B4-B6, hf all ten;
    a pair that does not fit is one line listing what fits, before any work."""
    hgnetv2 = [f"hgnetv2_b{i}_ssld" for i in range(7)]
    assert fitting_weights("presnet") == ["resnet34d_ssld", "resnet50d_ssld", "resnet101d_ssld"]
    assert fitting_weights("hgnetv2-dfine") == hgnetv2
    assert fitting_weights("hgnetv2-rtdetrv2") == hgnetv2[4:]
    assert sorted(fitting_weights("hf")) == sorted(fitting_weights("presnet") + hgnetv2)
    with pytest.raises(DetectorBackboneError, match="fit are: hgnetv2_b4_ssld, hgnetv2_b5_ssld, hgnetv2_b6_ssld"):
        export_backbone("hgnetv2_b0_ssld", "hgnetv2-rtdetrv2", tmp_path / "out")
    with pytest.raises(DetectorBackboneError, match="fit are: resnet34d_ssld, resnet50d_ssld, resnet101d_ssld"):
        export_backbone("lcnet_025_ssld", "presnet", tmp_path / "out")
    with pytest.raises(DetectorBackboneError, match="Unknown backbone layout 'rtdetr'. Use one of: presnet"):
        export_backbone("resnet50d_ssld", "rtdetr", tmp_path / "out")
    with pytest.raises(UnknownModelError):
        export_backbone("resnet50d_ssld.nope", "presnet", tmp_path / "out")
    assert set(LAYOUTS) == {"presnet", "hgnetv2-dfine", "hgnetv2-rtdetrv2", "hf"}
    assert not (tmp_path / "out").exists()


def test_bad_places_and_missing_weights_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file where the folder should be, and a weight that cannot be had offline (the error says how to get it):
    one error, and the folder the call would have made is gone."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileSystemError, match="a file stands where a folder is needed"):
        export_backbone(R50, "presnet", tmp_path / "file" / "out")
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("SSLD_ZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OfflineError, match="ssld-zoo download hgnetv2_b0_ssld.ssld_stage1_in22k_in1k"):
        export_backbone("hgnetv2_b0_ssld", "hgnetv2-dfine", tmp_path / "new" / "out", cache_dir=tmp_path / "hub")
    assert not (tmp_path / "new").exists()


def test_timm_features_give_each_detector_its_levels() -> None:
    """`timm.create_model(name, features_only=True, out_indices=...)` (what the detectors' TimmModel and
    transformers' TimmBackbone call) gives strides 8/16/32 with these channels for every zoo backbone."""
    import timm
    expected = {"resnet34d_ssld": ((2, 3, 4), (128, 256, 512)), "resnet50d_ssld": ((2, 3, 4), (512, 1024, 2048)),
                "resnet101d_ssld": ((2, 3, 4), (512, 1024, 2048)), "hgnetv2_b0_ssld": ((1, 2, 3), (256, 512, 1024)),
                "hgnetv2_b1_ssld": ((1, 2, 3), (256, 512, 1024)), "hgnetv2_b2_ssld": ((1, 2, 3), (384, 768, 1536)),
                **{f"hgnetv2_b{i}_ssld": ((1, 2, 3), (512, 1024, 2048)) for i in (3, 4, 5, 6)}}
    for name, (indices, channels) in expected.items():
        assert detector_levels(name) == (indices, channels), name
        with torch.device("meta"):
            model = timm.create_model(name, features_only=True, out_indices=indices)
        assert model.feature_info.reduction() == [8, 16, 32] and tuple(model.feature_info.channels()) == channels
    with pytest.raises(DetectorBackboneError, match="no feature level at stride"):
        detector_levels("resnet50d_ssld", strides=(64,))


SMALL_DETECTOR = dict(num_labels=3, d_model=64, encoder_hidden_dim=64, encoder_ffn_dim=128, decoder_ffn_dim=128,
                      decoder_layers=2, num_queries=12, num_denoising=6, decoder_in_channels=[64, 64, 64],
                      encoder_attention_heads=4, decoder_attention_heads=4)


def _targets(boxes: list[list[float]], labels: list[int]) -> list[dict[str, torch.Tensor]]:
    return [{"class_labels": torch.tensor([label]), "boxes": torch.tensor([box])} for box, label in zip(boxes, labels)]


@pytest.mark.parametrize("detector,backbone", [("rtdetr", R50), ("dfine", B0)])
def test_transformers_detectors_run_with_a_zoo_timm_backbone(detector: str, backbone: str, tmp_path: Path) -> None:
    """`detector_config` + `load_backbone_weights`: the detector builds offline with the zoo timm backbone, holds the
    zoo's verified weights in its frozen BatchNorm backbone, and runs forward and backward. The plain config (timm's
    default last level only) fails: `test_the_plain_timm_config_fails_as_reported`."""
    import transformers
    cls = {"rtdetr": transformers.RTDetrForObjectDetection, "dfine": transformers.DFineForObjectDetection}[detector]
    source = random_source(backbone, tmp_path)
    model = cls(detector_config(detector, backbone, **SMALL_DETECTOR))
    load_backbone_weights(model, backbone, pretrained=source)
    timm_backbone = model.model.backbone.model
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert_same_features(zoo_features(backbone, source, detector_levels(backbone)[0], x),
                             timm_backbone(x).feature_maps, "backbone inside the detector")
    out = model(x, labels=_targets([[0.5, 0.5, 0.4, 0.3], [0.3, 0.6, 0.2, 0.5]], [1, 2]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.logits.shape[0] == 2 and out.logits.shape[-1] == 3


def test_the_plain_timm_config_fails_as_reported() -> None:
    """Why the helper exists: `TimmBackboneConfig` returns timm's last level only, and D-FINE's encoder indexes three
    (the `IndexError` of issue 24, with ResNet's level numbers (2, 3, 4) as much as with the default)."""
    import transformers
    for out_indices in (None, (2, 3, 4)):
        plain = transformers.TimmBackboneConfig(backbone="hgnetv2_b0_ssld", out_indices=out_indices)
        with pytest.raises(IndexError):  # building the model: fewer or other levels than the encoder takes
            transformers.DFineForObjectDetection(transformers.DFineConfig(backbone_config=plain, **SMALL_DETECTOR))


def test_exported_hf_folder_goes_into_dfine(tmp_path: Path) -> None:
    """The hf export as the backbone of DFineForObjectDetection: its config as `backbone_config`, its weights loaded
    strictly into `model.model.backbone.model` (whose BatchNorm the detector has frozen)."""
    import transformers
    source = random_source(B0, tmp_path)
    folder = export_backbone(B0, "hf", tmp_path / "hf", pretrained=source).folder
    config = transformers.DFineConfig(backbone_config=transformers.AutoConfig.from_pretrained(folder),
                                      encoder_in_channels=[256, 512, 1024], **SMALL_DETECTOR)
    model = transformers.DFineForObjectDetection(config)
    model.model.backbone.model.load_state_dict(hf_backbone(folder).state_dict(), strict=True)
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert_same_features(zoo_features(B0, source, (1, 2, 3), x), model.model.backbone.model(x).feature_maps,
                             "exported backbone inside D-FINE")
    out = model(x, labels=_targets([[0.5, 0.5, 0.4, 0.3]], [1]))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_rtdetr_with_a_zoo_backbone_trains(tmp_path: Path) -> None:
    """A short CPU fine-tune of RTDetrForObjectDetection on a zoo PP-HGNetV2-B0 backbone: frozen BatchNorm, the SSLD
    per-stage learning rates (`stage_param_groups`, PaddleClas's detection preset), four synthetic images with one
    box each (a bright rectangle on noise). The loss falls."""
    torch.manual_seed(0)
    model = transformers_rtdetr_b0(tmp_path)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 64, 64, generator=generator) * 0.3
    boxes, labels = [], []
    for i, (x0, y0, w, h) in enumerate([(8, 8, 24, 16), (30, 20, 20, 30), (10, 36, 40, 20), (40, 6, 16, 40)]):
        images[i, i % 3, y0:y0 + h, x0:x0 + w] = 1.0
        boxes.append([(x0 + w / 2) / 64, (y0 + h / 2) / 64, w / 64, h / 64])
        labels.append(i % 3)
    groups = ssld_zoo.stage_param_groups(model, 5e-4, "detection")
    assert [g["name"] for g in groups][:2] == ["stem", "stem_no_decay"]
    optimizer = torch.optim.AdamW(groups, lr=5e-4, weight_decay=0.0)
    # the detector's default freeze_backbone_batch_norms swapped every backbone BatchNorm for a frozen one
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.model.backbone.modules())
    model.train()
    losses = []
    for _ in range(20):
        loss = model(images, labels=_targets(boxes, labels)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5, losses


def transformers_rtdetr_b0(tmp_path: Path) -> torch.nn.Module:
    """RT-DETR (small decoder) on hgnetv2_b0_ssld with random zoo weights loaded through the verified path."""
    import transformers
    model = transformers.RTDetrForObjectDetection(detector_config("rtdetr", "hgnetv2_b0_ssld", **SMALL_DETECTOR))
    load_backbone_weights(model, B0, pretrained=random_source(B0, tmp_path))
    return model


def test_import_ssld_zoo_first_registers_with_timm_after_a_find_spec_probe() -> None:
    """transformers asks `importlib.util.find_spec("timm")` whether timm is installed before importing it; the zoo's
    names must still reach timm when it is imported afterwards (a fresh interpreter: timm not yet loaded)."""
    import subprocess
    import sys
    code = ("import importlib.util, ssld_zoo; assert importlib.util.find_spec('timm'); import timm; "
            "assert timm.is_model('hgnetv2_b0_ssld') and timm.is_model('resnet50d_ssld')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
