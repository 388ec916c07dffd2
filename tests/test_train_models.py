"""Student and teacher building: every weight source, input normalisation, a frozen teacher, clear errors."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from train_support import REPO_ROOT

from ssld_zoo.errors import IntegrityError, InvalidWeightsError
from ssld_zoo.files import file_sha256
from ssld_zoo.train.networks import ModelBuildError, build_network, build_pair, normalized
from ssld_zoo.train.recipe import ModelSpec

ARGS = {"num_classes": 3}


def reference(seed: int = 7) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("test_resnet", **ARGS)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def hub_folder(folder: Path, model: torch.nn.Module, mean: list[float]) -> Path:
    folder.mkdir(parents=True)
    save_file(model.state_dict(), folder / "model.safetensors")
    path = folder / "model.safetensors"
    config = {"architecture": "test_resnet", "num_classes": 3,
              "pretrained_cfg": {"mean": mean, "std": [0.25, 0.25, 0.25], "input_size": [3, 16, 16]},
              "ssld_zoo": {"sha256": file_sha256(path), "size": path.stat().st_size}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_torch_checkpoint_with_wrapper_and_dataparallel_prefix(tmp_path: Path):
    model = reference()
    path = tmp_path / "teacher.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "best_prec1": 91.7}, path)
    built = build_network(ModelSpec("test_resnet", str(path), ARGS), "teacher")
    assert same_weights(built.module, model) and built.architecture == "test_resnet"
    assert built.model_args == {}  # num_classes is recorded at the top level of config.json


def test_safetensors_file_and_verified_hub_folder(tmp_path: Path):
    model = reference()
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    network = build_network(ModelSpec("test_resnet", str(tmp_path / "w.safetensors"), ARGS), "s")
    assert same_weights(network.module, model)
    folder = hub_folder(tmp_path / "folder", model, [0.1, 0.2, 0.3])
    built = build_network(ModelSpec("test_resnet", str(folder), ARGS), "teacher")
    assert same_weights(built.module, model)
    wrapped = normalized(built.module)
    assert wrapped.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])  # the folder's own preprocessing
    x = torch.rand(2, 3, 16, 16)
    built.module.eval()
    assert torch.equal(wrapped(x), built.module((x - wrapped.mean) / wrapped.std))
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the sha256"):
        build_network(ModelSpec("test_resnet", str(folder), ARGS), "teacher")


def test_hf_hub_teacher_names_its_architecture(tmp_path: Path, fake_hub):
    model = reference()
    folder = hub_folder(tmp_path / "folder", model, [0.5, 0.5, 0.5])
    fake_hub.publish("org/tiny-teacher", {p.name: p.read_bytes() for p in folder.iterdir()})
    built = build_network(ModelSpec("hf-hub:org/tiny-teacher", True), "teacher")
    assert built.architecture == "test_resnet" and same_weights(built.module, model)
    by_weights = build_network(ModelSpec("test_resnet", "hf-hub:org/tiny-teacher", ARGS), "teacher")
    assert same_weights(by_weights.module, model)


def test_teacher_is_frozen_and_follows_its_bn_mode():
    for bn in ("train", "eval"):
        student, teacher = build_pair(ModelSpec("test_resnet", False, ARGS),
                                      (ModelSpec("test_efficientnet", False, ARGS, bn=bn),))
        assert not any(p.requires_grad for p in teacher.parameters())
        assert all(p.requires_grad for p in student.module.parameters())
        bns = [m for m in teacher.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert bns and all(m.training == (bn == "train") for m in bns)
        before = {k: v.clone() for k, v in teacher.state_dict().items() if "running" in k}
        x = torch.rand(4, 3, 16, 16)
        out = teacher(x)
        after = teacher.state_dict()
        assert all(torch.equal(v, after[k]) for k, v in before.items())  # running stats never move
        if bn == "train":  # batch statistics: one image's output depends on the others in the batch
            assert not torch.allclose(out[:2], teacher(x[:2]))
        else:
            assert torch.allclose(out[:2], teacher(x[:2]), atol=1e-6)


def test_errors_are_one_clear_message(tmp_path: Path):
    with pytest.raises(ModelBuildError, match="predicts 5 classes and the student 'test_resnet' 3"):
        build_pair(ModelSpec("test_resnet", False, ARGS), (ModelSpec("test_resnet", False, {"num_classes": 5}),))
    with pytest.raises(ModelBuildError, match="neither a zoo model"):
        build_network(ModelSpec("no_such_net"), "student")
    wrong = tmp_path / "wrong.pth"
    torch.save(timm.create_model("test_efficientnet", **ARGS).state_dict(), wrong)
    with pytest.raises(InvalidWeightsError, match=r"do not fit model 'test_resnet': \d+ missing key\(s\)"):
        build_network(ModelSpec("test_resnet", str(wrong), ARGS), "teacher")
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": reference().state_dict(), "args": argparse.Namespace(lr=0.1)}, pickled)
    with pytest.raises(InvalidWeightsError, match="weights_only=True"):
        build_network(ModelSpec("test_resnet", str(pickled), ARGS), "teacher")
    with pytest.raises(InvalidWeightsError, match="must be true/false"):
        build_network(ModelSpec("test_resnet", str(tmp_path / "weights.npz"), ARGS), "teacher")


def test_zoo_teacher_weights_come_from_the_data_folder(monkeypatch: pytest.MonkeyPatch):
    root = Path(os.environ.get("SSLD_ZOO_DATA") or REPO_ROOT.parent / "shared" / "data")
    monkeypatch.delenv("SSLD_ZOO_DATA", raising=False)  # only the recipe run's --data / data_root says where
    built = build_network(ModelSpec("resnet20_cifar", True), "teacher", data_root=root)
    upstream = torch.load(root / "cifar10" / "resnet20-12fca82f.th", map_location="cpu", weights_only=True)
    state = built.module.state_dict()
    assert all(torch.equal(state[k.removeprefix("module.")], v) for k, v in upstream["state_dict"].items())


def test_ensemble_teacher_averages_the_members_probabilities():
    torch.manual_seed(0)
    specs = (ModelSpec("test_resnet", False, ARGS), ModelSpec("test_efficientnet", False, ARGS))
    _, ensemble = build_pair(ModelSpec("test_resnet", False, ARGS), specs)
    assert ensemble is not None and not any(p.requires_grad for p in ensemble.parameters())
    members = ensemble.model.members
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = torch.stack([m(x).softmax(-1) for m in members]).mean(0)
        got = ensemble(x)
    assert torch.allclose(got.softmax(-1), expected, atol=1e-6)
    assert torch.allclose(got.exp().sum(-1), torch.ones(4), atol=1e-5)  # log-probabilities: they work as logits
    assert not torch.allclose(members[0](x).softmax(-1), expected, atol=1e-3)  # both members take part


def test_ensemble_members_must_agree_on_classes():
    specs = (ModelSpec("test_resnet", False, ARGS), ModelSpec("test_efficientnet", False, {"num_classes": 5}))
    with pytest.raises(ModelBuildError, match="teacher members 'test_resnet' and 'test_efficientnet' predict"):
        build_pair(ModelSpec("test_resnet", False, ARGS), specs)


@pytest.mark.parametrize("old, new", [("ssld_zoo.train.models", "ssld_zoo.train.networks"),
                                      ("ssld_zoo.train.evaluation", "ssld_zoo.train.scoring")])
def test_a_renamed_module_still_imports_under_its_old_name_with_one_deprecation_warning(old, new, monkeypatch):
    import importlib
    import sys
    import warnings
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* 0.3.0: import {new}"):
        alias = importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert importlib.import_module(old) is alias  # imported again: no second warning
    current = importlib.import_module(new)
    moved = [name for name in alias.__all__ if getattr(alias, name).__module__ != old]  # not an old-shape wrapper
    assert moved and all(getattr(alias, name) is getattr(current, name) for name in moved)


def test_the_old_training_model_names_give_the_old_shape():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ssld_zoo.train.models import Built, build_model, build_pair as old_build_pair
    torch.manual_seed(0)
    built = build_model(ModelSpec("test_resnet", False, ARGS), "student")
    assert isinstance(built, Built) and built.model is built.module and built.architecture == "test_resnet"
    student, teacher = old_build_pair(ModelSpec("test_resnet", False, ARGS), (ModelSpec("test_resnet", False, ARGS),))
    assert isinstance(student, Built) and teacher is not None and student.model.num_classes == 3
