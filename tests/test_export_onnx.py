"""`ssld-zoo export --onnx`: onnxruntime gives PyTorch's logits (real CIFAR-10 weights, and four ImageNet families
with random weights and random BatchNorm statistics), dynamic and static batch, metadata, the CLI, and its errors."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.torch import save_file

import ssld_zoo
from ssld_zoo.cli import main
from ssld_zoo.tools.onnx_export import OnnxExportError, export_onnx, read_metadata
from ssld_zoo.catalogue.registry import get_weight_entry

CIFAR_STUDENT = "resnet20_cifar.sup_cifar10"


def onnx_logits(path: Path, x: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def assert_close_to_torch(path: Path, model: torch.nn.Module, x: torch.Tensor, rtol: float = 1e-4) -> None:
    """onnxruntime's logits equal PyTorch's to `rtol` of the largest logit (checked here, not by the exporter)."""
    with torch.inference_mode():
        expected = model(x).numpy()
    actual = onnx_logits(path, x)
    assert actual.shape == expected.shape
    assert np.abs(expected).max() > 1e-2  # a real comparison, not of two near-zero tensors
    assert np.abs(actual - expected).max() <= rtol * np.abs(expected).max()


def batch_axis(path: Path) -> onnx.TensorShapeProto.Dimension:
    return onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]


def random_weights(name: str, folder: Path) -> tuple[Path, torch.nn.Module]:
    """A safetensors file of random weights with random BatchNorm statistics and affine parameters, so that every
    layer matters (timm's init leaves some residual branches at zero and BN at the identity)."""
    torch.manual_seed(0)
    model = ssld_zoo.create(name).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model


def test_cifar_student_matches_onnxruntime_with_metadata(tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "r20.onnx"
    result = export_onnx(CIFAR_STUDENT, out)
    weight = get_weight_entry(CIFAR_STUDENT)
    assert sorted(p.name for p in out.parent.iterdir()) == ["r20.onnx"]  # no temporary or external-data files left
    assert batch_axis(out).dim_param and not batch_axis(out).dim_value
    assert [c.batch_size for c in result.checks] == [1, 3]
    assert all(0 < c.max_rel_error < 1e-4 for c in result.checks)
    model = ssld_zoo.create(CIFAR_STUDENT, pretrained=True).eval()
    assert_close_to_torch(out, model, torch.randn(5, 3, 32, 32))  # a batch size the exporter never saw
    meta = read_metadata(out)
    pre = weight.preprocessing
    assert meta == {"model": "resnet20_cifar", "weights": CIFAR_STUDENT, "weights_sha256": weight.hub.sha256,
                    "input_size": pre["input_size"], "mean": pre["mean"], "std": pre["std"],
                    "interpolation": pre["interpolation"], "crop_pct": pre["crop_pct"], "num_classes": 10,
                    "ssld_zoo_version": ssld_zoo.__version__}
    assert result.metadata["input_size"] == "[3, 32, 32]"


@pytest.mark.parametrize("name", [
    "mobilenetv3_small_035_ssld",  # hard-swish, SE with hard-sigmoid
    "lcnet_025_ssld",  # PP-LCNet: depthwise, SE, hard-swish
    "resnet34d_ssld",  # ResNet-vd: avg-pool shortcut, the zoo's extra layer1.0 shortcut
    "hgnetv2_b0_ssld",  # PP-HGNetV2: LAB, the zoo's stem pool
])
def test_families_match_onnxruntime(name: str, tmp_path: Path) -> None:
    weights, model = random_weights(name, tmp_path)
    out = tmp_path / f"{name}.onnx"
    result = export_onnx(name, out, weights=weights, input_size=64)
    assert result.input_size == (3, 64, 64)
    assert all(c.max_rel_error < 1e-4 for c in result.checks)
    assert_close_to_torch(out, model, torch.randn(2, 3, 64, 64))
    meta = read_metadata(out)
    assert meta["input_size"] == [3, 64, 64] and meta["weights"] == str(weights)
    assert meta["weights_sha256"] == ssld_zoo.weights.hub.file_sha256(weights)
    assert meta["crop_pct"] == get_weight_entry(name).preprocessing["crop_pct"]


def test_cli_static_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.onnx"
    weight = "resnet20_cifar.ssld_r56_cifar10"
    assert main(["export", weight, "--onnx", str(out), "--static-batch", "--batch-size", "4", "--opset", "19"]) == 0
    printed = capsys.readouterr().out
    sha256 = get_weight_entry(weight).hub.sha256
    assert f"exported {weight} -> {out}" in printed
    assert "opset 19, input 'input' 4x3x32x32, output 'logits'" in printed
    assert f"weights sha256 {sha256}" in printed
    assert "onnxruntime vs PyTorch, batch 4: max abs error" in printed and "batch 1" not in printed
    assert onnx.load(str(out)).opset_import[0].version == 19 and batch_axis(out).dim_value == 4
    assert read_metadata(out)["weights_sha256"] == sha256
    assert_close_to_torch(out, ssld_zoo.create(weight, pretrained=True).eval(), torch.randn(4, 3, 32, 32))
    with pytest.raises(Exception, match="index: 0 Got: 2 Expected: 4"):
        onnx_logits(out, torch.randn(2, 3, 32, 32))


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "resnet20_cifarx", "--onnx", str(tmp_path / "x.onnx")]) == 1
    assert "ssld-zoo: error: Unknown model 'resnet20_cifarx'. Did you mean: resnet20_cifar" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["export", "resnet20_cifar", "--random-init", "--onnx", str(blocker / "x.onnx")]) == 1
    assert f"Cannot use {blocker}: Not a directory (a file stands where a folder is needed" in capsys.readouterr().err
    assert main(["export", "resnet20_cifar", "--random-init", "--onnx", str(tmp_path)]) == 1
    assert "is a folder; give the path of the .onnx file to write" in capsys.readouterr().err
    assert main(["export", "resnet20_cifar", "--random-init", "--onnx", str(tmp_path / "o.onnx"), "--opset", "17"]) == 1
    assert "cannot be exported at opset 17" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_failed_check_writes_nothing(tmp_path: Path) -> None:
    """A parity failure names the model and leaves no file (a zero tolerance fails: the runtimes' float32 kernels
    round differently)."""
    out = tmp_path / "strict.onnx"
    with pytest.raises(OnnxExportError, match=r"'resnet20_cifar.sup_cifar10' differs from PyTorch at batch 1: max abs "
                                              r"error [0-9.e-]+ \(max \|logit\| [0-9.]+\) exceeds atol 0"):
        export_onnx(CIFAR_STUDENT, out, rtol=0.0, atol=0.0)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` sees when it is not installed
    with pytest.raises(OnnxExportError, match=r'needs onnxruntime, which is not installed. Install it with: '
                                              r'pip install "ssld-zoo\[onnx\]"'):
        export_onnx(CIFAR_STUDENT, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []
