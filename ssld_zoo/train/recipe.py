"""Training recipes: one YAML file says everything a run needs. Parsing and checking only (no torch).

    name: resnet20_cifar_ssld            # the student weight this recipe makes (catalogue `name.tag` or a new name)
    student: {model: resnet20_cifar}     # zoo name, timm name, `hf-hub:org/name`; optional pretrained, model_args
    teacher: {model: resnet56_cifar, pretrained: true, bn: train}   # null for a supervised recipe; a list of
                                         # such mappings is an ensemble (probabilities averaged; one bn mode)
    loss: {type: symmetric_kl, temperature: 1.0}                    # symmetric_kl | soft_ce | js | kl | ce
    data:
      input_size: 32
      augment: {pad_crop: 4, hflip: true}          # train augmentation and eval preprocessing, see `Augment`
      eval: {source: cifar10:test}
    batch_size: 128                      # global, over all processes
    optimizer: {momentum: 0.9, nesterov: false, no_decay_norm_bias: true}
    stages:
      - {name: stage1, epochs: 200, lr: 0.1, warmup_epochs: 5, weight_decay: 1.0e-4,
         train: [{source: cifar10:train, labels: false}]}
      - {name: stage2, epochs: 30, lr: 0.001, train: [{source: cifar10:train, labels: false}]}
    runtime: {amp: bf16, channels_last: true, compile: false, ema: 0.9998, workers: 4, seed: 0, checkpoint_every: 500}
    soft_labels: online                  # online (run the teacher every step) | cache (replay `ssld-zoo cache` output)
    cache: {dir: runs/cache/r56, views: 8, topk: 10, sparse: uniform}   # see `CacheSpec`
    reference: {...}                     # free-form provenance: PaddleClas config, reported accuracy, notes

Augment keys: `pad_crop: N` (pad N px with zeros, random crop back), `hflip: true`, `random_resized_crop: true` or
`{scale: [a, b]}`, `auto_augment: rand-m9-mstd0.5` (a timm RandAugment spec), `interpolation` (bilinear, bicubic,
nearest) and `eval_crop_pct` (eval: resize the short side to input_size / eval_crop_pct, center crop input_size).

Data sources: `cifar10:train` / `cifar10:test` (the packed JPEG files under `--data` / `SSLD_ZOO_DATA`),
`imagefolder:PATH` (class sub-folders), `folder:PATH` (any images, unlabeled), `list:PATH` (a text file with one
image path per line, relative to the list file or absolute, optionally followed by an integer label; `cifar10:train/123`
names an image of a CIFAR-10 pack, as `ssld-zoo mine` writes for a CIFAR pool), `shards:PATH_OR_URL` (WebDataset tar
shards written by `ssld-zoo pack`: a folder or URL with their index.json, or a brace pattern of tar files;
`ssld_zoo.data.shards`). `subset` picks part of a source:
`per_class:N` (the first N images of every class), `per_class:A:B` (images A to B-1 of every class) or
`except_per_class:N` (the rest of `per_class:N`). `labels: false` hides the labels from the run (they never reach
the loss of a distillation recipe anyway; this makes an unlabeled pool explicit). Paths may use
`${ENV_VAR}`. `key=value` overrides use dotted keys (`stages.0.epochs=1`, `batch_size=64`) and YAML values.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Sequence

from ssld_zoo.catalogue.registry import INTERPOLATIONS
from ssld_zoo.data.subsets import SUBSET_FORMS, parse_subset
from ssld_zoo.errors import CheckpointError, RecipeError
from ssld_zoo.reading import MAX_DEPTH, clip, parse_yaml, read_yaml, shorten
from ssld_zoo.train.fields import FieldReader, OneOf, Range, ReadWith, Valid
from ssld_zoo.weights.validation import MAX_CLASSES, MAX_INPUT_PX, MIN_CROP_PCT

LOSSES = ("symmetric_kl", "soft_ce", "js", "kl", "ce")
SOFT_LABELS = ("online", "cache")
SPARSE_MODES = ("uniform", "renormalize")
TEACHER_BN_MODES = ("train", "eval")
AMP_MODES = (None, "bf16")
SOURCE_KINDS = ("cifar10", "imagefolder", "folder", "list", "shards")
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 100.0  # kl's softening; beyond these the loss under- or overflows
MAX_WORKERS = 1024
MAX_RECIPE_BYTES = 1 << 20
_ENV = re.compile(r"\$\{(\w+)\}")
_RUN_NAME = re.compile(r"^\w[\w.-]*$")
_RAND_AUGMENT = re.compile(r"^rand(-(t\w+|(mstd|p)\d+(\.\d+)?|(mmax|inc|m|n)\d+))*$")

# Field types with the checks the reader applies (`ssld_zoo.train.fields`).
Positive = Annotated[int, Range(min=1)]
Count = Annotated[int, Range(min=0)]
NonNegative = Annotated[float, Range(min=0)]
PositiveNumber = Annotated[float, Range(above=0)]


def _crop_scale(reader: FieldReader, raw: Any, key: str) -> tuple[float, float] | None:
    """`random_resized_crop`: true (scale 0.08..1), false, or {scale: [a, b]} with 0 < a <= b <= 1."""
    if isinstance(raw, bool):
        return (0.08, 1.0) if raw else None
    if not isinstance(raw, dict):
        raise reader.fail(key, f"must be true, false or {{scale: [a, b]}}, not {shorten(raw)}")
    unknown = sorted((k for k in raw if k != "scale"), key=str)
    if unknown:
        raise reader.fail(f"{key}.{unknown[0]}", "is not a recipe key (known here: scale)")
    scale = reader.value(tuple[PositiveNumber, PositiveNumber], raw.get("scale", [0.08, 1.0]), f"{key}.scale")
    if not scale[0] <= scale[1] <= 1:
        raise reader.fail(f"{key}.scale", f"must be [a, b] with 0 < a <= b <= 1, not {shorten(raw.get('scale'))}")
    return scale


def _source_form(source: str) -> bool:
    kind, sep, location = source.partition(":")
    return bool(sep and location) and kind in SOURCE_KINDS and (kind != "cifar10" or location in ("train", "test"))


def _stages(reader: FieldReader, raw: Any, key: str) -> tuple[Stage, ...]:
    """`stages`: a non-empty list; a stage without a name is called `stage1`, `stage2`, ... by its place."""
    if not isinstance(raw, list) or not raw:
        raise reader.fail(key, f"needs at least one stage (a list of mappings), not {shorten(raw)}")
    return tuple(reader.read(Stage, node, f"{key}.{i}", defaults={"name": f"stage{i + 1}"})
                 for i, node in enumerate(raw))


@dataclass(frozen=True)
class ModelSpec:
    """A student or teacher: `model` is a zoo name, a timm name, `hf-hub:org/name` or a local checkpoint path."""

    model: str
    pretrained: bool | str = False
    model_args: dict[str, Any] = field(default_factory=dict)
    bn: Annotated[str, OneOf(TEACHER_BN_MODES)] = "train"  # teacher only: BatchNorm in train mode (SSLD) or eval


@dataclass(frozen=True)
class DataSource:
    """One source of training or evaluation images."""

    source: Annotated[str, Valid(_source_form, f"KIND:LOCATION with KIND one of {', '.join(SOURCE_KINDS)} "
                                               "(cifar10:train or cifar10:test for CIFAR-10)")]
    labels: bool = True
    subset: Annotated[str | None, Valid(parse_subset, SUBSET_FORMS)] = None

    @property
    def kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def location(self) -> str:
        return self.source.split(":", 1)[1]


@dataclass(frozen=True)
class Stage:
    """One training stage (SSLD: stage 1 on labeled + unlabeled images, stage 2 a low-lr fine-tune)."""

    name: str
    epochs: Positive
    lr: NonNegative
    train: tuple[DataSource, ...]
    warmup_epochs: NonNegative = 0.0
    min_lr: NonNegative = 0.0
    weight_decay: NonNegative = 0.0


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation (applied in this order) and eval preprocessing; every sample's randomness is seeded."""

    # the crop's scale range, written true, false or {scale: [a, b]}; None: resize + center crop
    random_resized_crop: Annotated[tuple[float, float] | None, ReadWith(_crop_scale)] = None
    pad_crop: Count = 0
    hflip: bool = False
    auto_augment: Annotated[str | None, Valid(_RAND_AUGMENT.match, "a timm RandAugment spec like rand-m9-mstd0.5")] \
        = None
    interpolation: Annotated[str, OneOf(INTERPOLATIONS)] = "bilinear"
    eval_crop_pct: Annotated[float, Range(min=MIN_CROP_PCT, max=1)] = 1.0


@dataclass(frozen=True)
class Runtime:
    amp: Annotated[str | None, OneOf(AMP_MODES)] = None
    channels_last: bool = False
    compile: bool = False
    ema: Annotated[float | None, Range(above=0, below=1)] = None
    workers: Annotated[int, Range(min=0, max=MAX_WORKERS)] = 2
    seed: Annotated[int, Range(min=0, max=2 ** 32 - 1)] = 0
    checkpoint_every: Positive = 500
    log_every: Positive = 50
    eval_every: Positive | None = None  # evaluate every N optimizer steps (and at each stage's end) instead of epochs


@dataclass(frozen=True)
class CacheSpec:
    """The teacher's soft-label cache (`ssld-zoo cache` writes it, `soft_labels: cache` replays it).

    `views` augmented views per image, the `topk` most probable classes of each, `sparse` says how a loss completes
    a top-k target: `uniform` spreads the remaining probability evenly over the other classes, `renormalize` compares
    student and teacher on the teacher's top-k classes only (both renormalised there). `batch_size` is the teacher's
    batch when writing (default: the recipe's, so BatchNorm in train mode sees batches of the training size).
    """

    dir: str | None = None
    views: Positive = 8
    topk: Positive = 10
    sparse: Annotated[str, OneOf(SPARSE_MODES)] = "uniform"
    batch_size: Positive | None = None


@dataclass(frozen=True)
class LossSpec:
    """`loss:`: the per-sample loss and (for `kl` only) its temperature."""

    type: Annotated[str, OneOf(LOSSES)]
    temperature: PositiveNumber = 1.0


@dataclass(frozen=True)
class DataSpec:
    """`data:`: the input size, the train augmentation / eval preprocessing, and the evaluation images."""

    input_size: Annotated[int, Range(min=1, max=MAX_INPUT_PX)]
    augment: Augment = Augment()
    eval: DataSource | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """`optimizer:`: SGD's momentum, Nesterov, and whether norm and bias parameters skip weight decay."""

    momentum: NonNegative = 0.9
    nesterov: bool = False
    no_decay_norm_bias: bool = False


@dataclass(frozen=True)
class Recipe:
    """A parsed, checked recipe, nested the way the YAML nests. `raw` is the resolved YAML mapping (after
    overrides), kept for the record. Each field is read from the YAML key of its name by its type hint
    (`ssld_zoo.train.fields`); `teachers` is read from `teacher:`, and `raw`/`path` are not in the YAML."""

    name: Annotated[str, Valid(_RUN_NAME.match, "a folder name (letters, digits, '_', '.', '-')")]
    student: ModelSpec
    teachers: tuple[ModelSpec, ...]  # every member of the teacher (an ensemble when more than one); () supervised
    loss: LossSpec
    data: DataSpec
    batch_size: Positive
    stages: Annotated[tuple[Stage, ...], ReadWith(_stages)]
    raw: dict[str, Any]
    optimizer: OptimizerSpec = OptimizerSpec()
    runtime: Runtime = Runtime()
    soft_labels: Annotated[str, OneOf(SOFT_LABELS)] = "online"
    cache: CacheSpec = CacheSpec()
    reference: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def teacher(self) -> ModelSpec | None:
        """The teacher's first member (whose bn mode applies to all), or None for a supervised recipe."""
        return self.teachers[0] if self.teachers else None

    @property
    def distills(self) -> bool:
        return self.teacher is not None

    @property
    def teacher_names(self) -> str:
        """The teacher as a card or log names it: `a`, or `a + b + c` for an ensemble."""
        return " + ".join(t.model for t in self.teachers)


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe YAML file (or a shipped recipe by name, e.g. `cifar10/b_ssld`), apply `key=value` overrides,
    and check it."""
    from ssld_zoo.catalogue.shipped import find_recipe
    path = find_recipe(os.fspath(path))
    if not path.exists():
        raise RecipeError(f"Cannot read recipe {path}: it does not exist. `ssld-zoo recipes` lists the shipped "
                          "recipes by name.", path=str(path))
    raw = read_yaml(path, what="recipe", max_bytes=MAX_RECIPE_BYTES, error=RecipeError)
    if not isinstance(raw, dict):
        raise RecipeError(f"Recipe {path} must be a YAML mapping (name, student, teacher, loss, data, stages, ...).",
                          path=str(path))
    return parse_recipe(apply_overrides(raw, overrides, where=str(path)), path=path)


def saved_recipe(text: Any, where: str) -> dict[str, Any]:
    """The recipe mapping a run saved (in its checkpoint or folder), read with the recipe file's bounds; anything
    else is a `CheckpointError` naming `where`."""
    raw = parse_yaml(text, where=f"The recipe saved in {where}", max_chars=MAX_RECIPE_BYTES,
                     error=CheckpointError) if isinstance(text, str) else None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where} holds no recipe mapping; it was not written by `ssld-zoo train`.",
                              path=where)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], *, where: str = "recipe") -> dict[str, Any]:
    """A copy of `raw` with each `a.b.0.c=value` applied (value parsed as YAML; list items by index)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"Override '{clip(item)}' for {where} must look like key=value, e.g. "
                              "stages.0.epochs=1.")
        parts = key.split(".")
        if len(parts) > MAX_DEPTH:  # each part may add a level, and the recipe reader allows no deeper one
            raise RecipeError(f"Override '{clip(item)}' for {where}: its key has {len(parts):,} parts, more than the "
                              f"{MAX_DEPTH} levels a recipe may nest.")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), item, where)
        last = parts[-1]
        value = parse_yaml(text, where=f"Override '{clip(item)}' for {where}: the value", max_chars=MAX_RECIPE_BYTES,
                           error=RecipeError) if text else None
        if isinstance(node, list):
            index = _index(node, last, key, item, where)
            node[index] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"Override '{clip(item)}' for {where}: '{'.'.join(parts[:-1])}' is not a mapping or "
                              "list.")
    return out


def _index(node: list, part: str, key: str, item: str, where: str) -> int:
    if not part.isdigit() or len(part) > 18 or int(part) >= len(node):
        raise RecipeError(f"Override '{clip(item)}' for {where}: '{clip(key)}' needs a list index below "
                          f"{len(node)}.")
    return int(part)


def _child(node: Any, part: str, key: str, item: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key, item, where)]
    if isinstance(node, dict):
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        return node[part]
    raise RecipeError(f"Override '{clip(item)}' for {where}: '{clip(key)}' is not a mapping or list.")


def expand_env(text: str) -> str:
    """Replace `${VAR}` with the environment variable's value (an error names a variable that is not set)."""
    def value(m: "re.Match[str]") -> str:
        if m[1] not in os.environ:
            raise RecipeError(f"'{text}' uses ${{{m[1]}}}, which is not set. Export it or override the path.")
        return os.environ[m[1]]
    return _ENV.sub(value, text)


def parse_recipe(raw: dict[str, Any], *, path: Path | None = None) -> Recipe:
    """Check a recipe mapping and build the `Recipe`; every problem is a `RecipeError` naming file and key.

    Each field is read by its type (`ssld_zoo.train.fields`); only the rules that span fields are written here."""
    where = str(path) if path else "recipe"
    reader = FieldReader(where)
    if not isinstance(raw, dict):
        raise RecipeError(f"{where} must be a mapping (name, student, teacher, loss, data, stages, ...).")
    raw = _tree(raw)
    recipe = reader.read(Recipe, raw, given={"teachers": _teachers(reader, raw.get("teacher")), "raw": raw,
                                             "path": path}, allow=("teacher", "description"))
    loss, teacher = recipe.loss, recipe.teacher
    if loss.type != "kl" and loss.temperature != 1.0:
        raise reader.fail("loss.temperature", f"is {loss.temperature}, but loss '{loss.type}' has no temperature "
                                              "(only kl softens both distributions); remove it or use loss.type kl")
    if loss.type == "kl" and not MIN_TEMPERATURE <= loss.temperature <= MAX_TEMPERATURE:
        raise reader.fail("loss.temperature", f"must be between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}, not "
                                              f"{loss.temperature} (outside that range the softened probabilities "
                                              "under- or overflow and the loss stops carrying any signal)")
    if (teacher is None) != (loss.type == "ce"):
        raise RecipeError(f"{where}: loss.type '{loss.type}' " + (
            "needs a teacher (set `teacher:`), or use loss.type ce for a supervised recipe." if teacher is None
            else "is the supervised loss; a distillation recipe uses symmetric_kl, soft_ce, js or kl."),
            key="loss.type")
    _check_model(reader, recipe.student, "student")
    for i, member in enumerate(recipe.teachers):
        _check_model(reader, member, "teacher" if isinstance(raw.get("teacher"), dict) else f"teacher.{i}")
    for i, stage in enumerate(recipe.stages):
        if not stage.train:
            raise reader.fail(f"stages.{i}.train", "needs at least one data source")
        for j, source in enumerate(stage.train):
            _check_source(reader, source, f"stages.{i}.train.{j}", supervised=teacher is None)
    if recipe.data.eval is not None:
        _check_source(reader, recipe.data.eval, "data.eval", supervised=True)
    if recipe.optimizer.nesterov and not recipe.optimizer.momentum:
        raise reader.fail("optimizer.nesterov", "needs a non-zero `optimizer.momentum`")
    if recipe.soft_labels == "cache" and (teacher is None or recipe.cache.dir is None):
        raise RecipeError(f"{where}: `soft_labels: cache` needs a teacher and `cache.dir` (the folder "
                          "`ssld-zoo cache` wrote).", key="soft_labels")
    return recipe


def _tree(node: Any) -> Any:
    """A copy of the mappings and lists of `node` that shares none of them, so the recipe written into a run folder
    never needs a YAML alias (which the reader refuses)."""
    if isinstance(node, dict):
        return {k: _tree(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_tree(v) for v in node]
    return node


def _teachers(reader: FieldReader, node: Any) -> tuple[ModelSpec, ...]:
    """`teacher:` is null, one model mapping, or a list of them (an ensemble sharing one BatchNorm mode)."""
    if node is None:
        return ()
    if not isinstance(node, list):
        return (reader.read(ModelSpec, node, "teacher"),)
    if not node:
        raise reader.fail("teacher", "is an empty list; give one or more models, or null for a supervised recipe")
    members = tuple(reader.read(ModelSpec, m, f"teacher.{i}") for i, m in enumerate(node))
    if len({m.bn for m in members}) > 1:
        raise reader.fail("teacher", "members use different bn modes; an ensemble uses one (train or eval)")
    return members


def _check_model(reader: FieldReader, spec: ModelSpec, key: str) -> None:
    classes = spec.model_args.get("num_classes")
    if classes is not None and not (type(classes) is int and 1 <= classes <= MAX_CLASSES):
        raise reader.fail(key + ".model_args.num_classes", f"must be a whole number from 1 to {MAX_CLASSES:,}, not "
                                                           f"{shorten(classes)}")


def _check_source(reader: FieldReader, source: DataSource, key: str, *, supervised: bool) -> None:
    if source.kind == "folder" and (supervised or source.subset is not None):
        raise reader.fail(key + ".source", "is a folder: source, which has no labels; a supervised recipe, "
                                           "evaluation and per-class subsets need imagefolder:, list: or cifar10:")
    if supervised and not source.labels:
        raise reader.fail(key + ".labels", "must be true: a supervised recipe (and evaluation) needs labels")
