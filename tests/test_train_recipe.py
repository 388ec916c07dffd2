"""Recipe checks added for training: augmentation keys, typed runtime and optimizer, sources that need labels."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ssld_zoo.train.recipe import Augment, RecipeError, load_recipe, parse_recipe


def recipe(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "r", "student": {"model": "test_resnet"}, "teacher": {"model": "test_resnet"},
        "loss": {"type": "symmetric_kl"}, "data": {"input_size": 32}, "batch_size": 8,
        "stages": [{"epochs": 1, "lr": 0.1, "train": [{"source": "folder:/images"}]}]}
    for key, value in changes.items():
        node = raw
        *parents, last = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def test_augment_defaults_and_every_key():
    assert parse_recipe(recipe()).data.augment == Augment()
    full = parse_recipe(recipe(data__augment={
        "random_resized_crop": {"scale": [0.35, 1]}, "pad_crop": 4, "hflip": True,
        "auto_augment": "rand-m9-mstd0.5-inc1", "interpolation": "bicubic", "eval_crop_pct": 0.875})).data.augment
    assert full == Augment(random_resized_crop=(0.35, 1.0), pad_crop=4, hflip=True,
                           auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic", eval_crop_pct=0.875)
    default_scale = parse_recipe(recipe(data__augment={"random_resized_crop": True})).data.augment
    assert default_scale.random_resized_crop == (0.08, 1.0)


@pytest.mark.parametrize("augment, key", [
    ({"pad_crop": -1}, "data.augment.pad_crop"),
    ({"pad_crop": 2.5}, "data.augment.pad_crop"),
    ({"hflip": "yes"}, "data.augment.hflip"),
    ({"random_resized_crop": {"scale": [0.9, 0.1]}}, "data.augment.random_resized_crop.scale"),
    ({"random_resized_crop": {"ratio": [1, 1]}}, "data.augment.random_resized_crop.ratio"),
    ({"random_resized_crop": "big"}, "data.augment.random_resized_crop"),
    ({"auto_augment": "original-mstd0.5"}, "data.augment.auto_augment"),
    ({"auto_augment": "rand-q9"}, "data.augment.auto_augment"),
    ({"interpolation": "lanczos"}, "data.augment.interpolation"),
    ({"eval_crop_pct": 1.5}, "data.augment.eval_crop_pct"),
    ({"mixup": 0.2}, "data.augment.mixup"),
])
def test_bad_augment_names_the_key(augment: dict[str, Any], key: str):
    with pytest.raises(RecipeError, match=f"`{key}`"):
        parse_recipe(recipe(data__augment=augment))


def test_yaml_exponents_without_dot_are_numbers(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nstudent: {model: test_resnet}\nteacher: {model: test_resnet}\n"
                    "loss: {type: kl, temperature: 4}\ndata: {input_size: 32}\nbatch_size: 8\n"
                    "stages: [{epochs: 1, lr: 1e-1, weight_decay: 5e-5, train: [{source: 'folder:/x'}]}]\n")
    r = load_recipe(path, ["stages.0.min_lr=1e-6"])
    assert (r.stages[0].lr, r.stages[0].weight_decay, r.stages[0].min_lr, r.loss.temperature) == (0.1, 5e-5, 1e-6, 4.0)


@pytest.mark.parametrize("changes, key", [
    ({"runtime": {"amp": "fp16"}}, "runtime.amp"),
    ({"runtime": {"ema": 1.5}}, "runtime.ema"),
    ({"runtime": {"workers": -1}}, "runtime.workers"),
    ({"runtime": {"checkpoint_every": 0}}, "runtime.checkpoint_every"),
    ({"runtime": {"compile": "no"}}, "runtime.compile"),
    ({"optimizer": {"nesterov": 1}}, "optimizer.nesterov"),
    ({"loss": {"type": "kl", "temperature": 0}}, "loss.temperature"),
    ({"loss": {"type": "kl", "alpha": 0.5}}, "loss.alpha"),
    ({"teacher": {"model": "test_resnet", "pretrained": 3}}, "teacher.pretrained"),
    ({"name": "runs/x"}, "name"),
])
def test_typed_keys(changes: dict[str, Any], key: str):
    raw = recipe()
    raw.update(changes)
    with pytest.raises(RecipeError, match=f"`{key}`"):
        parse_recipe(raw)


def test_nesterov_needs_momentum():
    with pytest.raises(RecipeError, match="nesterov"):
        parse_recipe(recipe(optimizer={"momentum": 0, "nesterov": True}))


def test_sources_that_need_labels():
    supervised = recipe(loss={"type": "ce"})
    supervised.pop("teacher")
    with pytest.raises(RecipeError, match="folder: source, which has no labels"):
        parse_recipe(supervised)
    with pytest.raises(RecipeError, match="`data.eval.source`"):
        parse_recipe(recipe(data__eval={"source": "folder:/images"}))
    with pytest.raises(RecipeError, match="cifar10:train or cifar10:test"):
        parse_recipe(recipe(data__eval={"source": "cifar10:val"}))
    ok = recipe(stages=[{"epochs": 1, "lr": 0.1, "train": [
        {"source": "cifar10:train", "subset": "except_per_class:400", "labels": False}]}])
    assert parse_recipe(ok).stages[0].train[0].subset == "except_per_class:400"


def test_subset_ranges():
    ok = recipe(stages=[{"epochs": 1, "lr": 0.1, "train": [
        {"source": "cifar10:train", "subset": "per_class:100:300", "labels": False}]}])
    assert parse_recipe(ok).stages[0].train[0].subset == "per_class:100:300"
    bad = recipe(stages=[{"epochs": 1, "lr": 0.1, "train": [
        {"source": "cifar10:train", "subset": "except_per_class:1:2"}]}])
    with pytest.raises(RecipeError, match=r"stages\.0\.train\.0\.subset.*per_class:A:B"):
        parse_recipe(bad)


def test_teacher_ensemble():
    members = [{"model": "resnet32_cifar", "pretrained": True}, {"model": "resnet56_cifar", "pretrained": True}]
    r = parse_recipe(recipe(teacher=members))
    assert [t.model for t in r.teachers] == ["resnet32_cifar", "resnet56_cifar"] and r.teacher == r.teachers[0]
    assert r.teacher_names == "resnet32_cifar + resnet56_cifar"
    assert parse_recipe(recipe()).teachers == (parse_recipe(recipe()).teacher,)
    with pytest.raises(RecipeError, match="members use different bn modes"):
        parse_recipe(recipe(teacher=[members[0], {**members[1], "bn": "eval"}]))
    with pytest.raises(RecipeError, match=r"`teacher\.1\.model`"):
        parse_recipe(recipe(teacher=[members[0], {"pretrained": True}]))
    with pytest.raises(RecipeError, match="empty list"):
        parse_recipe(recipe(teacher=[]))


def test_eval_every():
    assert parse_recipe(recipe()).runtime.eval_every is None
    assert parse_recipe(recipe(runtime={"eval_every": 25})).runtime.eval_every == 25
    with pytest.raises(RecipeError, match="runtime.eval_every"):
        parse_recipe(recipe(runtime={"eval_every": 0}))
