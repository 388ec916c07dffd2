"""Recipe checks added for training: augmentation keys, typed runtime and optimizer, sources that need labels."""
from __future__ import annotations

import enum
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from hypothesis import given, strategies as st

from ssld_zoo.errors import CheckpointError
from ssld_zoo.reading import shorten
from ssld_zoo.train.fields import FieldReader, Range, Valid
from ssld_zoo.train.recipe import (Augment, Recipe, RecipeError, Runtime, apply_overrides, load_recipe, parse_recipe,
                                   saved_recipe)


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


# -- the reader is generated from the dataclass fields (issue 23) ---------------------------------------------------
@dataclass(frozen=True)
class RuntimeWithClip(Runtime):
    grad_clip: Annotated[float | None, Range(above=0)] = None


@dataclass(frozen=True)
class RecipeWithMore(Recipe):
    runtime: RuntimeWithClip = RuntimeWithClip()
    mixup: Literal["off", "batch", "pair"] = "off"
    epochs_per_eval: tuple[int, ...] = ()


def test_a_field_added_to_a_recipe_dataclass_is_read_with_no_other_edit(monkeypatch: pytest.MonkeyPatch):
    """A new field in a dataclass (here: subclasses with one more field each, put in the recipe module's place) is
    read, defaulted, type-checked and named in errors without touching the reader."""
    import ssld_zoo.train.recipe as recipe_module
    monkeypatch.setattr(recipe_module, "Recipe", RecipeWithMore)
    read = parse_recipe(recipe(runtime={"grad_clip": 5, "workers": 0}, mixup="pair", epochs_per_eval=[1, 2]))
    assert isinstance(read, RecipeWithMore) and read.runtime == RuntimeWithClip(workers=0, grad_clip=5.0)
    assert (read.mixup, read.epochs_per_eval) == ("pair", (1, 2))
    assert parse_recipe(recipe()).runtime.grad_clip is None
    for changes, message in [
        ({"runtime": {"grad_clip": 0}}, "`runtime.grad_clip` must be a positive number, not 0"),
        ({"runtime": {"grad_clip": "high"}}, "`runtime.grad_clip` must be a positive number, not 'high'"),
        ({"mixup": "cutmix"}, "`mixup` must be one of off, batch, pair, not 'cutmix'"),
        ({"epochs_per_eval": [1, "x"]}, "`epochs_per_eval.1` must be an integer, not 'x'"),
        ({"runtime": {"grad_clipp": 1}}, "`runtime.grad_clipp` is not a recipe key"),
    ]:
        with pytest.raises(RecipeError, match=re.escape(message)):
            parse_recipe({**recipe(), **changes})


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    size: Annotated[int, Range(min=1, max=10)]
    ratio: float = 0.5


@dataclass(frozen=True)
class Everything:
    name: str
    colour: Colour = Colour.RED
    inner: Inner | None = None
    pair: tuple[float, float] = (0.0, 1.0)
    counts: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    flag: bool | str = False
    shape: Annotated[str, Valid(lambda s: s.startswith("x"), "a name starting with x")] = "x1"


def test_every_supported_type_is_read_and_named_in_errors():
    reader = FieldReader("e.yaml")
    got = reader.read(Everything, {"name": "n", "colour": "blue", "inner": {"size": 3}, "pair": [1, 2.5],
                                   "counts": {"a": 1}, "tags": ["t"], "flag": "maybe", "shape": "xy"})
    assert got == Everything("n", Colour.BLUE, Inner(3), (1.0, 2.5), {"a": 1}, ["t"], "maybe", "xy")
    assert reader.read(Everything, {"name": "n", "inner": None, "tags": None}) == Everything("n")
    for node, message in [
        ({}, "e.yaml: `name` is missing: give a non-empty string."),
        ({"name": ""}, "e.yaml: `name` must be a non-empty string, not ''."),
        ({"name": "n", "colour": "green"}, "e.yaml: `colour` must be one of red, blue, not 'green'."),
        ({"name": "n", "inner": {"size": 11}}, "e.yaml: `inner.size` must be an integer from 1 to 10, not 11."),
        ({"name": "n", "inner": {"size": 2, "ratio": "1e999"}}, "e.yaml: `inner.ratio` must be a number, not '1e999'."),
        ({"name": "n", "inner": {}}, "e.yaml: `inner.size` is missing: give an integer from 1 to 10."),
        ({"name": "n", "pair": [1]}, "e.yaml: `pair` must be a list of 2: [a number, a number], not [1]."),
        ({"name": "n", "counts": {"a": True}}, "e.yaml: `counts.a` must be an integer, not True."),
        ({"name": "n", "flag": 3}, "e.yaml: `flag` must be true or false or a non-empty string, not 3."),
        ({"name": "n", "shape": "y"}, "e.yaml: `shape` must be a name starting with x, not 'y'."),
        ({"name": "n", "extra": 1}, "e.yaml: `extra` is not a recipe key (known here: colour, counts, flag, inner, "
                                    "name, pair, shape, tags)."),
    ]:
        with pytest.raises(RecipeError) as caught:
            reader.read(Everything, node)
        assert str(caught.value) == message


# -- numbers at their extremes, aliases, and generated recipes and overrides ----------------------------------------
@pytest.mark.parametrize("override, message", [
    ("batch_size=1e400", "`batch_size` must be a positive integer, not '1e400'"),
    ("batch_size=" + "9" * 30, "`batch_size` must be a positive integer, not 999999999999999999999999999999"),
    ("batch_size=" + "9" * 5000, "an integer of 5,000 digits (at most 40 are allowed)"),
    ("stages.0.lr=1e400", "`stages.0.lr` must be a non-negative number, not '1e400'"),
    ("stages.0.lr=1.0e+400", "'1.0e+400' is not a finite number"),
    ("stages.0.lr=.nan", "'.nan' is not a finite number"),
    ("runtime.ema=-.inf", "'-.inf' is not a finite number"),
    ("data.input_size=100000", "`data.input_size` must be an integer from 1 to 4,096, not 100000"),
    ("runtime.seed=-1", "`runtime.seed` must be an integer from 0 to 4,294,967,295, not -1"),
    ("stages.99999999999999999999999.lr=1", "needs a list index below 1"),
    ("reference=" + "[" * 100 + "]" * 100, "nesting deeper than 64 levels"),
    ("reference=&a [*a]", "aliases (*a) are not allowed"),
], ids=lambda v: shorten(v, 40))
def test_numbers_at_their_extremes_are_one_line(tmp_path: Path, override: str, message: str):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe()))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, [override])
    assert message in str(caught.value) and "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_an_alias_bomb_under_reference_is_refused_before_expansion(tmp_path: Path):
    path = tmp_path / "r.yaml"
    bomb = "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    path.write_text(yaml.safe_dump(recipe()) + "reference:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                    + bomb)
    start = time.perf_counter()
    with pytest.raises(RecipeError, match=r"r.yaml is not valid YAML: aliases \(\*l0\) are not allowed"):
        load_recipe(path)
    assert time.perf_counter() - start < 5


def test_a_saved_recipe_is_read_back_without_aliases():
    """What a run saves (`yaml.safe_dump(recipe.raw)`) never needs an alias, even when the mapping given to
    `parse_recipe` shares a node, so a resume reads it back; a hostile saved recipe is one `CheckpointError`."""
    shared = {"source": "folder:/images"}
    raw = recipe(stages=[{"epochs": 1, "lr": 0.1, "train": [shared]}, {"epochs": 1, "lr": 0.1, "train": [shared]}])
    text = yaml.safe_dump(parse_recipe(raw).raw)
    assert "&" not in text and saved_recipe(text, "ckpt.pt") == parse_recipe(raw).raw
    with pytest.raises(CheckpointError, match="The recipe saved in ckpt.pt is not valid YAML: aliases"):
        saved_recipe("a: &x [1]\nb: *x\n", "ckpt.pt")
    with pytest.raises(CheckpointError, match="ckpt.pt holds no recipe mapping"):
        saved_recipe(None, "ckpt.pt")


extreme = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from([10 ** 400, -(10 ** 60), 1e308, "1e400", "cifar10:train", "folder:/x", "per_class:3"]))
values = st.recursive(extreme, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
paths = st.lists(st.sampled_from(["name", "student", "teacher", "loss", "type", "temperature", "data", "input_size",
                                  "augment", "random_resized_crop", "scale", "eval", "batch_size", "stages", "0", "1",
                                  "train", "epochs", "lr", "source", "subset", "labels", "runtime", "ema", "seed",
                                  "cache", "dir", "optimizer", "momentum", "nesterov", "reference", "model_args",
                                  "num_classes", "pretrained", "bn", "soft_labels"]), min_size=1, max_size=4)


@given(st.lists(st.tuples(paths, values), max_size=4))
def test_property_any_recipe_mapping_is_a_recipe_or_one_recipe_error(changes: list[tuple[list[str], Any]]):
    raw = recipe()
    for path, value in changes:
        node: Any = raw
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else (
                node.setdefault(part, {}) if isinstance(node, dict) else None)
            if not isinstance(node, (dict, list)):
                break
        else:
            if isinstance(node, dict):
                node[path[-1]] = value
    try:
        parsed = parse_recipe(raw)
    except RecipeError as e:
        assert "\n" not in str(e) and len(str(e)) < 600
    else:
        assert parsed.batch_size >= 1 and parsed.stages and all(math.isfinite(s.lr) for s in parsed.stages)


@given(st.lists(st.text(max_size=40) | st.tuples(paths, st.text(max_size=30)).map(
    lambda kv: ".".join(kv[0]) + "=" + kv[1]), max_size=4))
def test_property_any_overrides_give_a_recipe_or_one_recipe_error(overrides: list[str]):
    try:
        parsed = parse_recipe(apply_overrides(recipe(), overrides, where="r.yaml"), path=Path("r.yaml"))
    except RecipeError as e:
        assert "\n" not in str(e) and len(str(e)) < 600
    else:
        assert parsed.path == Path("r.yaml")
