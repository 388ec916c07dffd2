"""Training recipes: every YAML under recipes/ loads, every ImageNet catalogue weight links to the recipe that makes
it, and each recipe's student and teacher build (on the meta device: nothing allocated or downloaded) with the
catalogue's architecture and 1000 classes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
from conftest import REPO_ROOT

import ssld_zoo  # noqa: F401  (registers the zoo architectures with timm)
from ssld_zoo.catalogue import registry
from ssld_zoo.train.recipe import Recipe, expand_env, load_recipe

RECIPES = REPO_ROOT / "recipes"
IMAGENET_ENV = ("IMAGENET_DIR", "SSLD_ZOO_MINED_LIST")
ALL_RECIPES = sorted(RECIPES.rglob("*.yaml"))
IMAGENET_WEIGHTS = sorted((w for e in registry.iter_models() if e.num_classes == 1000 for w in e.weights.values()),
                          key=lambda w: w.full_name)
# The teachers PaddleClas names in the catalogue's `teacher` field, as zoo or timm names.
PADDLE_TEACHERS = {
    "ResNeXt101_32x16d_wsl": "resnext101_32x16d.fb_wsl_ig1b_ft_in1k",
    "ResNet50_vd_ssld": "resnet50d_ssld.ssld_in1k",
    "Res2Net200_vd_26w_4s_ssld": "res2net200d_ssld.ssld_in1k",
    "PPHGNet_small_ssld": "hgnet_small_ssld.ssld_in1k",
}


def _recipe(weight: registry.WeightEntry) -> Recipe:
    assert weight.data["recipe"], f"{weight.full_name} has no recipe"
    return load_recipe(REPO_ROOT / weight.data["recipe"])


TRAINING_ONLY_ARGS = {"drop_rate", "drop_path_rate"}  # regularisation: no parameter depends on them


def _classes(model: str) -> int:
    """The class count a `name.tag` model is published with: the catalogue's for zoo weights, timm's otherwise."""
    zoo = _zoo_weight(model)
    if zoo is not None:
        return registry.get_model_entry(zoo.model).num_classes
    cfg = timm.models.get_pretrained_cfg(model)
    assert cfg is not None, f"{model} is neither a catalogue weight nor a timm pretrained tag"
    return cfg.num_classes


def _zoo_weight(model: str) -> registry.WeightEntry | None:
    """The catalogue weight a `name.tag` model refers to, or None for a plain timm/zoo architecture name."""
    name, _, tag = model.partition(".")
    return registry.get_model_entry(name).weight(tag) if tag and name in registry.list_models() else None


def test_one_imagenet_recipe_per_catalogue_weight():
    assert {p.name for p in (RECIPES / "imagenet").glob("*.yaml")} == {
        f"{w.full_name}.yaml" for w in IMAGENET_WEIGHTS}, "one recipes/imagenet/NAME.TAG.yaml per ImageNet weight"


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_recipe_loads(path: Path):
    recipe = load_recipe(path)
    assert recipe.stages and recipe.batch_size > 0


@pytest.mark.parametrize("path", sorted((RECIPES / "imagenet").glob("*.yaml")), ids=lambda p: p.name)
def test_imagenet_recipe_paths_expand(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for var in IMAGENET_ENV:
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    recipe = load_recipe(path)
    sources = [recipe.data.eval] + [s for stage in recipe.stages for s in stage.train]
    for source in sources:
        assert set(re.findall(r"\$\{(\w+)\}", source.source)) <= set(IMAGENET_ENV)
        assert str(tmp_path) in expand_env(source.location)
    assert recipe.data.eval.source == "imagefolder:${IMAGENET_DIR}/val"
    for source in (s for stage in recipe.stages for s in stage.train):
        assert source.source in ("imagefolder:${IMAGENET_DIR}/train", "list:${SSLD_ZOO_MINED_LIST}")
        assert source.labels == (source.kind == "imagefolder"), "the mined images are unlabeled"


@pytest.mark.parametrize("weight", IMAGENET_WEIGHTS, ids=lambda w: w.full_name)
def test_catalogue_weight_links_its_recipe(weight: registry.WeightEntry):
    assert weight.data["recipe"] == f"recipes/imagenet/{weight.full_name}.yaml"
    recipe = _recipe(weight)
    assert recipe.name == weight.full_name
    pre = weight.preprocessing
    assert recipe.data.input_size == pre["input_size"][1] == pre["input_size"][2]
    assert recipe.data.augment.eval_crop_pct == pytest.approx(pre["crop_pct"])
    assert recipe.data.augment.interpolation == pre["interpolation"]
    reported = (weight.data["metrics"]["paddle_reported"] or {}).get("top1")
    assert recipe.reference["reported_top1"]["weight"] == reported
    assert recipe.reference["sources"] and recipe.reference["published"]


@pytest.mark.parametrize("weight", IMAGENET_WEIGHTS, ids=lambda w: w.full_name)
def test_recipe_follows_the_ssld_method(weight: registry.WeightEntry):
    recipe = _recipe(weight)
    assert recipe.teacher is not None and recipe.teacher.pretrained is True and recipe.teacher.bn == "train"
    assert recipe.loss.type in ("symmetric_kl", "soft_ce") and recipe.loss.temperature == 1.0
    assert recipe.teacher.model != weight.full_name, "a weight cannot teach itself"
    documented = weight.data["teacher"]
    if documented:
        assert recipe.teacher.model == PADDLE_TEACHERS[documented]
    else:
        assert recipe.reference["teacher"].startswith("not published; this project's choice"), (
            "a teacher PaddleClas does not document must be declared this project's choice")
    runtime = recipe.runtime
    assert (runtime.amp, runtime.channels_last, runtime.workers) == ("bf16", True, 8)
    assert 1000 <= runtime.checkpoint_every <= 5000
    if any(s.kind == "list" for stage in recipe.stages for s in stage.train):
        assert any("not public" in note for note in recipe.reference["notes"]), "say the mined list is not public"
    if len(recipe.stages) == 2:  # SSLD: stage 1 adds the mined images, stage 2 fine-tunes on ImageNet-1k only
        assert [s.kind for s in recipe.stages[0].train] == ["imagefolder", "list"]
        assert [s.kind for s in recipe.stages[1].train] == ["imagefolder"]


@pytest.mark.parametrize("weight", IMAGENET_WEIGHTS, ids=lambda w: w.full_name)
def test_student_and_teacher_match_the_catalogue_architecture(weight: registry.WeightEntry):
    recipe = _recipe(weight)
    entry = registry.get_model_entry(weight.model)
    student = recipe.student
    start = _zoo_weight(student.model)
    if start is not None:  # a fine-tune that starts from another catalogue weight of the same model
        assert student.pretrained is True and start.model == weight.model and start.full_name != weight.full_name
    else:  # trained from scratch: the catalogue's architecture and arguments, plus training-only ones (drop_rate)
        assert student.model == entry.architecture and student.pretrained is False
        assert entry.model_args.items() <= student.model_args.items()
        # the rest only regularise, so test_catalogue's build of the entry (parameter count, MACs) holds here too
        assert set(student.model_args) - set(entry.model_args) <= TRAINING_ONLY_ARGS
    assert "num_classes" not in student.model_args and entry.num_classes == 1000
    assert not recipe.teacher.model_args and _classes(recipe.teacher.model) == 1000


def test_stage2_lr_is_about_a_hundredth_of_stage1():
    """PaddleClas fine-tunes at 1/100 of the stage-1 lr (the MobileNetV3 rows, rescaled to stage 1's batch, at
    1/162). A PP-HGNetV2 stage-2 recipe starts from the stage-1 weight, so it compares with that weight's recipe."""
    pairs = {}
    for weight in IMAGENET_WEIGHTS:
        recipe = _recipe(weight)
        if len(recipe.stages) == 2:
            pairs[weight.full_name] = (recipe, recipe)
        elif weight.tag == "ssld_stage2_ft_in1k":
            assert recipe.student.model == f"{weight.model}.ssld_stage1_in22k_in1k"
            pairs[weight.full_name] = (_recipe(registry.get_weight_entry(recipe.student.model)), recipe)
    assert len(pairs) >= 20
    for name, (first, second) in pairs.items():
        stage1, stage2 = first.stages[0], second.stages[-1]
        assert 1 / 200 <= stage2.lr / stage1.lr <= 1 / 80, name
        assert first.batch_size == second.batch_size, name
        assert stage2.epochs <= stage1.epochs and stage2.weight_decay == stage1.weight_decay, name


def test_readme_lists_every_recipe():
    readme = (RECIPES / "README.md").read_text(encoding="utf-8")
    for path in (RECIPES / "imagenet").glob("*.yaml"):
        assert f"imagenet/{path.name}" in readme, f"recipes/README.md does not list {path.name}"
