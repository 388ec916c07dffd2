"""The soft-label cache on real CIFAR-10 images and real teachers: it replays the online run's views and teacher
batches, cached training never runs the teacher and matches online training, writing resumes after SIGKILL, and a
corrupt shard, a missing shard, another teacher, transform or data are refused."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from ssld_zoo.train.cache import write_cache
from ssld_zoo.train.data import ImageDataset, TrainBatches, Transform, loader, open_source
from ssld_zoo.train.engine import train
from ssld_zoo.train.losses import complete_topk, symmetric_kl
from ssld_zoo.train.networks import build_network, freeze_teacher, normalized
from ssld_zoo.train.recipe import RecipeError, load_recipe, parse_recipe
from ssld_zoo.train.soft_labels import CacheError, CachedDataset, open_cache, shard_name
from train_support import python_env, run_module

pytestmark = pytest.mark.usefixtures("shared_data")  # fails, naming SSLD_ZOO_DATA, without it

RAW: dict[str, Any] = {
    "name": "cached_student",
    "student": {"model": "resnet20_cifar", "pretrained": True},  # akamaster's: a student that is already good
    "teacher": {"model": "resnet32_cifar", "pretrained": True, "bn": "train"},
    "loss": {"type": "symmetric_kl"},
    "data": {"input_size": 32, "augment": {"pad_crop": 4, "hflip": True},
             "eval": {"source": "cifar10:test", "subset": "per_class:10"}},
    "batch_size": 32,
    "stages": [{"name": "stage1", "epochs": 2, "lr": 0.01,
                "train": [{"source": "cifar10:train", "subset": "per_class:10", "labels": False}]}],
    "runtime": {"workers": 0, "seed": 3, "checkpoint_every": 1000},
    "cache": {"views": 2, "topk": 10},
}


def recipe(tmp_path: Path, **changes: Any):
    raw = copy.deepcopy(RAW)
    for key, value in changes.items():
        node = raw
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return parse_recipe(raw)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache") / "r32"
    write_cache(parse_recipe(copy.deepcopy(RAW)), folder, device="cpu")
    return folder


def teacher_of(r):
    model = build_network(r.teacher, "teacher").module
    freeze_teacher(model, r.teacher.bn)
    return model


def test_cache_replays_the_online_views_and_teacher_batches(cache_dir: Path, tmp_path: Path):
    """View 0 holds exactly the pixels of online epoch 0 and the teacher's outputs on epoch 0's batches (BatchNorm in
    train mode), up to fp16 rounding of the log-probabilities."""
    r = recipe(tmp_path)
    teacher = teacher_of(r)
    labels = open_cache(r, teacher, folder=cache_dir)
    source = open_source(r.stages[0].train[0])
    transform = Transform(32, r.data.augment, train=True, fill=tuple(labels.manifest["fill"]))
    online = ImageDataset([source], transform)
    cached = CachedDataset([source], [0], transform, labels, first_epoch=0)
    wrapped = normalized(teacher)
    batches = TrainBatches(len(online), r.batch_size, seed=r.runtime.seed, stage=0, epoch=0)
    compared = 0
    for keys, batch in zip(batches, loader(online, batches, workers=0, pin_memory=False)):
        for key, image in zip(keys, batch.images):
            assert torch.equal(cached[key][1], image)
        with torch.no_grad():
            expected = wrapped(batch.images.float() / 255).log_softmax(-1)
        stored = torch.stack([torch.from_numpy(cached[key][3]).float() for key in keys])
        classes = torch.stack([torch.from_numpy(cached[key][4]).long() for key in keys])
        assert (stored - expected.gather(-1, classes)).abs().max() < 0.02  # fp16 step at |x| < 32 is <= 1/64
        compared += len(keys)
    assert compared == 96  # the three full batches of 32 (the last 8 images are dropped by the online epoch)


def test_cached_training_never_runs_the_teacher_and_matches_online(cache_dir: Path, tmp_path: Path):
    """Equal steps, online vs cached: same losses (to fp16 rounding) and the same test accuracy within 0.5 points; a
    forward hook on every module with frozen parameters shows the cached run never calls the teacher."""
    online = train(recipe(tmp_path), tmp_path / "online", device="cpu")
    calls: list[str] = []

    def frozen_forward(module: torch.nn.Module, args: Any) -> None:
        params = list(module.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            calls.append(type(module).__name__)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(frozen_forward)
    try:
        cached = train(recipe(tmp_path, soft_labels="cache", cache__dir=str(cache_dir)), tmp_path / "cached",
                       device="cpu")
    finally:
        handle.remove()
    assert calls == []
    runs = [[json.loads(line) for line in (folder.parent / "metrics.jsonl").read_text().splitlines()]
            for folder in (online, cached)]
    assert runs[1][0] == {**runs[0][0], "from_cache": True}  # the teacher's eval record, read from the cache
    for a, b in zip(runs[0][1:], runs[1][1:]):
        assert abs(a["train_loss"] - b["train_loss"]) < 2e-3 * a["train_loss"]
        assert abs(a["eval_top1"] - b["eval_top1"]) <= 0.5 and abs(a["agreement"] - b["agreement"]) <= 0.5


def test_writing_resumes_after_sigkill_without_redoing_finished_shards(tmp_path: Path):
    raw = copy.deepcopy(RAW) | {"cache": {"views": 4, "topk": 3, "dir": str(tmp_path / "cache")}}
    raw["data"]["eval"] = None
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    manifest = tmp_path / "cache" / "manifest.json"
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ssld_zoo", "cache", str(path), "--device", "cpu"],
                                env=python_env(), stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 200
        while not (manifest.exists() and json.loads(manifest.read_text())["files"]):
            assert proc.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = json.loads(manifest.read_text())
    assert not first["complete"] and 1 <= len(first["files"]) < 4
    kept = {name: (tmp_path / "cache" / name).stat().st_mtime_ns for name in first["files"]}
    done = run_module(["-m", "ssld_zoo", "cache", str(path), "--device", "cpu"])
    assert done.returncode == 0, done.stderr
    assert "4 views, top-3" in done.stdout
    final = json.loads(manifest.read_text())
    assert final["complete"] and len(final["files"]) == 4
    assert {name: (tmp_path / "cache" / name).stat().st_mtime_ns for name in first["files"]} == kept
    reference = write_cache(load_recipe(path), tmp_path / "reference", device="cpu")
    assert json.loads((reference / "manifest.json").read_text())["files"] == final["files"]


def test_corrupt_and_missing_shards_are_reported(cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    import shutil
    from ssld_zoo.cli import main
    broken = tmp_path / "broken"
    shutil.copytree(cache_dir, broken)
    shard = broken / shard_name(0, 1, 0)
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    r = recipe(tmp_path, soft_labels="cache", cache__dir=str(broken))
    with pytest.raises(CacheError, match=r"p00-v001-c0000.safetensors is corrupt: sha256 [0-9a-f]{64}"):
        train(r, tmp_path / "run", device="cpu")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(r.raw))
    assert main(["cache", str(path), "--verify"]) == 1
    assert "is corrupt" in capsys.readouterr().err
    shard.unlink()
    with pytest.raises(CacheError, match="p00-v001-c0000.safetensors is missing"):
        train(r, tmp_path / "run2", device="cpu")
    assert main(["cache", str(path), "--verify", "--out", str(cache_dir)]) == 0
    assert "files verified" in capsys.readouterr().out


def test_garbage_with_a_matching_sha256_and_a_damaged_manifest_are_reported(cache_dir: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture):
    """The sha256 check cannot catch a shard replaced together with its manifest entry, or a hand-edited manifest:
    `--verify` also reads each shard's header, and the manifest's fields are checked before anything relies on them."""
    import hashlib
    import json
    import shutil

    from ssld_zoo.cli import main
    broken = tmp_path / "garbage"
    shutil.copytree(cache_dir, broken)
    shard = broken / shard_name(0, 0, 0)
    shard.write_bytes(b"\x10" + b"\x00" * 7 + b"not json at all!")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["files"][shard_name(0, 0, 0)]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (broken / "manifest.json").write_text(json.dumps(manifest))
    r = recipe(tmp_path, soft_labels="cache", cache__dir=str(broken))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(r.raw))
    assert main(["cache", str(path), "--verify"]) == 1
    assert "p00-v000-c0000.safetensors is not a soft-label shard" in capsys.readouterr().err

    manifest["views"] = "2"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match="manifest.json is damaged: 'views' is missing or not int"):
        train(r, tmp_path / "run", device="cpu")


@pytest.mark.parametrize("change, message", [
    ({"teacher__model": "resnet44_cifar"}, r"made with teacher resnet32_cifar .* this recipe's teacher is resnet44"),
    ({"teacher__bn": "eval"}, r"made with teacher resnet32_cifar \(pretrained True, bn train"),
    ({"data__augment": {"pad_crop": 2, "hflip": True}}, "made with another transform"),
    ({"stages": [{"name": "s", "epochs": 1, "lr": 0.1, "train": [{"source": "cifar10:train",
                                                                   "subset": "per_class:5"}]}]},
     r"has no soft labels for training source cifar10:train \(subset per_class:5\)"),
])
def test_a_cache_for_another_teacher_transform_or_data_is_refused(cache_dir: Path, tmp_path: Path,
                                                                  change: dict[str, Any], message: str):
    r = recipe(tmp_path, soft_labels="cache", cache__dir=str(cache_dir), **change)
    with pytest.raises(CacheError, match=message):
        train(r, tmp_path / "run", device="cpu")


def test_writing_into_a_cache_of_other_settings_is_refused(cache_dir: Path, tmp_path: Path):
    with pytest.raises(CacheError, match=r"other settings \(different teacher\)"):
        write_cache(recipe(tmp_path, teacher__model="resnet20_cifar"), cache_dir, device="cpu")
    with pytest.raises(CacheError, match="holds no soft-label cache"):
        train(recipe(tmp_path, soft_labels="cache", cache__dir=str(tmp_path / "nothing")), tmp_path / "r", device="cpu")


def test_recipe_needs_a_cache_dir_and_a_teacher_for_cached_soft_labels():
    with pytest.raises(RecipeError, match="needs a teacher and `cache.dir`"):
        parse_recipe({**copy.deepcopy(RAW), "soft_labels": "cache"})
    with pytest.raises(RecipeError, match="`cache.sparse` must be one of uniform, renormalize"):
        parse_recipe({**copy.deepcopy(RAW), "cache": {"sparse": "smooth"}})


def test_top_k_targets_uniform_and_renormalized():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 10), torch.randn(4, 10) * 3
    log_p = teacher.log_softmax(-1)
    full = log_p.topk(10, dim=-1)
    for sparse in ("uniform", "renormalize"):  # k = all classes: the full teacher distribution
        s, t = complete_topk(student, full.values.half(), full.indices, sparse)
        assert torch.allclose(symmetric_kl(s, t), symmetric_kl(student, teacher), rtol=2e-3)
    top = log_p.topk(3, dim=-1)
    s, t = complete_topk(student, top.values, top.indices, "uniform")
    probs = t.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-6) and s is student
    rest = 1 - top.values.exp().sum(-1, keepdim=True)
    mask = torch.ones(4, 10, dtype=torch.bool).scatter_(-1, top.indices, False)
    assert torch.allclose(probs[mask].view(4, 7), (rest / 7).expand(4, 7), atol=1e-6)
    s, t = complete_topk(student, top.values, top.indices, "renormalize")
    assert torch.equal(s, student.gather(-1, top.indices))
    assert torch.allclose(t.log_softmax(-1).exp(), top.values.exp() / top.values.exp().sum(-1, keepdim=True))
    assert np.isfinite(symmetric_kl(s, t).numpy()).all()
