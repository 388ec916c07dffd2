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
names an image of a CIFAR-10 pack, as `ssld-zoo mine` writes for a CIFAR pool). `subset` picks part of a source:
`per_class:N` (the first N images of every class), `per_class:A:B` (images A to B-1 of every class) or
`except_per_class:N` (the rest of `per_class:N`). `labels: false` hides the labels from the run (they never reach
the loss of a distillation recipe anyway; this makes an unlabeled pool explicit). Paths may use
`${ENV_VAR}`. `key=value` overrides use dotted keys (`stages.0.epochs=1`, `batch_size=64`) and YAML values.
"""
from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ssld_zoo.catalogue.registry import INTERPOLATIONS
from ssld_zoo.data.subsets import SUBSET_FORMS, parse_subset
from ssld_zoo.errors import RecipeError

LOSSES = ("symmetric_kl", "soft_ce", "js", "kl", "ce")
SOFT_LABELS = ("online", "cache")
SPARSE_MODES = ("uniform", "renormalize")
TEACHER_BN_MODES = ("train", "eval")
AMP_MODES = (None, "bf16")
SOURCE_KINDS = ("cifar10", "imagefolder", "folder", "list")
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 100.0  # kl's softening; beyond these the loss under- or overflows
MAX_CLASSES = 100_000  # ImageNet-22k has 21,841; a larger classifier is a typo that would allocate gigabytes
_ENV = re.compile(r"\$\{(\w+)\}")
_FLOAT = re.compile(r"^[+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_RUN_NAME = re.compile(r"^\w[\w.-]*$")
_RAND_AUGMENT = re.compile(r"^rand(-(t\w+|(mstd|p)\d+(\.\d+)?|(mmax|inc|m|n)\d+))*$")




@dataclass(frozen=True)
class ModelSpec:
    """A student or teacher: `model` is a zoo name, a timm name, `hf-hub:org/name` or a local checkpoint path."""

    model: str
    pretrained: bool | str = False
    model_args: dict[str, Any] = field(default_factory=dict)
    bn: str = "train"  # teacher only: BatchNorm in train mode (PaddleClas SSLD) or eval mode


@dataclass(frozen=True)
class DataSource:
    """One source of training or evaluation images."""

    source: str
    labels: bool = True
    subset: str | None = None

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
    epochs: int
    lr: float
    train: tuple[DataSource, ...]
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation (applied in this order) and eval preprocessing; every sample's randomness is seeded."""

    random_resized_crop: tuple[float, float] | None = None  # crop scale range; None: resize + center crop
    pad_crop: int = 0
    hflip: bool = False
    auto_augment: str | None = None  # timm RandAugment spec, e.g. rand-m9-mstd0.5
    interpolation: str = "bilinear"
    eval_crop_pct: float = 1.0


@dataclass(frozen=True)
class Runtime:
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    ema: float | None = None
    workers: int = 2
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int | None = None  # evaluate every N optimizer steps (and at each stage's end) instead of every epoch


@dataclass(frozen=True)
class CacheSpec:
    """The teacher's soft-label cache (`ssld-zoo cache` writes it, `soft_labels: cache` replays it).

    `views` augmented views per image, the `topk` most probable classes of each, `sparse` says how a loss completes
    a top-k target: `uniform` spreads the remaining probability evenly over the other classes, `renormalize` compares
    student and teacher on the teacher's top-k classes only (both renormalised there). `batch_size` is the teacher's
    batch when writing (default: the recipe's, so BatchNorm in train mode sees batches of the training size).
    """

    dir: str | None = None
    views: int = 8
    topk: int = 10
    sparse: str = "uniform"
    batch_size: int | None = None


@dataclass(frozen=True)
class LossSpec:
    """`loss:`: the per-sample loss and (for `kl` only) its temperature."""

    type: str
    temperature: float = 1.0


@dataclass(frozen=True)
class DataSpec:
    """`data:`: the input size, the train augmentation / eval preprocessing, and the evaluation images."""

    input_size: int
    augment: Augment = Augment()
    eval: DataSource | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """`optimizer:`: SGD's momentum, Nesterov, and whether norm and bias parameters skip weight decay."""

    momentum: float = 0.9
    nesterov: bool = False
    no_decay_norm_bias: bool = False


@dataclass(frozen=True)
class Recipe:
    """A parsed, checked recipe, nested the way the YAML nests. `raw` is the resolved YAML mapping (after
    overrides), kept for the record."""

    name: str
    student: ModelSpec
    teachers: tuple[ModelSpec, ...]  # every member of the teacher (an ensemble when more than one); () supervised
    loss: LossSpec
    data: DataSpec
    batch_size: int
    stages: tuple[Stage, ...]
    raw: dict[str, Any]
    optimizer: OptimizerSpec = OptimizerSpec()
    runtime: Runtime = Runtime()
    soft_labels: str = "online"
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
    import yaml

    from ssld_zoo.catalogue.shipped import find_recipe
    path = find_recipe(os.fspath(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RecipeError(f"Cannot read recipe {path}: {e.strerror}. `ssld-zoo recipes` lists the shipped "
                          "recipes by name.") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"Recipe {path} is not valid YAML: {_yaml_error(e)}.") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"Recipe {path} must be a YAML mapping (name, student, teacher, loss, data, stages, ...).")
    return parse_recipe(apply_overrides(raw, overrides, where=str(path)), path=path)


def _yaml_error(error: Exception) -> str:
    """A YAML parser error in one line: what is wrong and where (PyYAML's own text spans several lines)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], *, where: str = "recipe") -> dict[str, Any]:
    """A copy of `raw` with each `a.b.0.c=value` applied (value parsed as YAML; list items by index)."""
    import yaml
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"Override '{item}' for {where} must look like key=value, e.g. stages.0.epochs=1.")
        parts = key.split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), item, where)
        last = parts[-1]
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as e:
            raise RecipeError(f"Override '{item}' for {where}: the value is not valid YAML: "
                              f"{_yaml_error(e)}.") from None
        if isinstance(node, list):
            index = _index(node, last, key, item, where)
            node[index] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"Override '{item}' for {where}: '{'.'.join(parts[:-1])}' is not a mapping or list.")
    return out


def _index(node: list, part: str, key: str, item: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise RecipeError(f"Override '{item}' for {where}: '{key}' needs a list index below {len(node)}.")
    return int(part)


def _child(node: Any, part: str, key: str, item: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key, item, where)]
    if isinstance(node, dict):
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        return node[part]
    raise RecipeError(f"Override '{item}' for {where}: '{key}' is not a mapping or list.")


def expand_env(text: str) -> str:
    """Replace `${VAR}` with the environment variable's value (an error names a variable that is not set)."""
    def value(m: "re.Match[str]") -> str:
        if m[1] not in os.environ:
            raise RecipeError(f"'{text}' uses ${{{m[1]}}}, which is not set. Export it or override the path.")
        return os.environ[m[1]]
    return _ENV.sub(value, text)


def parse_recipe(raw: dict[str, Any], *, path: Path | None = None) -> Recipe:
    """Check a recipe mapping and build the `Recipe`; every problem is a `RecipeError` naming file and key."""
    where = str(path) if path else "recipe"
    r = _Reader(raw, where)
    known = {"name", "description", "student", "teacher", "loss", "data", "batch_size", "optimizer", "stages",
             "runtime", "reference", "soft_labels", "cache"}
    r.no_unknown(raw, known, "")
    teacher_raw = raw.get("teacher")
    loss = r.mapping(raw, "loss")
    r.no_unknown(loss, set(LossSpec.__dataclass_fields__), "loss.")
    loss_type = r.choice(loss, "type", LOSSES, "loss.")
    temperature = r.positive_number(loss, "temperature", "loss.", LossSpec.temperature)
    if loss_type != "kl" and temperature != 1.0:
        raise RecipeError(f"{where}: `loss.temperature` is {temperature}, but loss '{loss_type}' has no temperature "
                          "(only kl softens both distributions); remove it or use loss.type kl.")
    if loss_type == "kl" and not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        raise RecipeError(f"{where}: `loss.temperature` must be between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}, not "
                          f"{temperature} (outside that range the softened probabilities under- or overflow and the "
                          "loss stops carrying any signal).")
    teachers = r.teachers(teacher_raw)
    teacher = teachers[0] if teachers else None
    if (teacher is None) != (loss_type == "ce"):
        raise RecipeError(f"{where}: loss.type '{loss_type}' " + (
            "needs a teacher (set `teacher:`), or use loss.type ce for a supervised recipe." if teacher is None
            else "is the supervised loss; a distillation recipe uses symmetric_kl, soft_ce, js or kl."))
    data = r.mapping(raw, "data")
    r.no_unknown(data, set(DataSpec.__dataclass_fields__), "data.")
    optimizer = r.optimizer(raw.get("optimizer") or {})
    runtime = r.runtime(raw.get("runtime") or {})
    stages = tuple(r.stage(s, i, supervised=teacher is None) for i, s in enumerate(r.sequence(raw, "stages")))
    if not stages:
        raise RecipeError(f"{where}: `stages` needs at least one stage.")
    soft_labels = r.choice(raw, "soft_labels", SOFT_LABELS, default=Recipe.soft_labels)
    cache = r.cache(raw.get("cache") or {})
    if soft_labels == "cache" and (teacher is None or cache.dir is None):
        raise RecipeError(f"{where}: `soft_labels: cache` needs a teacher and `cache.dir` (the folder "
                          "`ssld-zoo cache` wrote).")
    return Recipe(
        name=r.name(raw), student=r.model(r.mapping(raw, "student"), "student"), teachers=teachers,
        loss=LossSpec(loss_type, temperature),
        data=DataSpec(input_size=r.positive_int(data, "input_size", "data."),
                      augment=r.augment(data.get("augment") or {}),
                      eval=r.source(data["eval"], "data.eval", supervised=True) if data.get("eval") else None),
        batch_size=r.positive_int(raw, "batch_size"), stages=stages, raw=raw, optimizer=optimizer, runtime=runtime,
        soft_labels=soft_labels, cache=cache, reference=dict(raw.get("reference") or {}), path=path)


class _Reader:
    """Typed access to the raw mapping with errors that name the recipe and key."""

    def __init__(self, raw: dict[str, Any], where: str) -> None:
        self.raw, self.where = raw, where

    def fail(self, key: str, what: str) -> RecipeError:
        return RecipeError(f"{self.where}: `{key}` {what}.")

    def no_unknown(self, node: dict[str, Any], known: set[str], prefix: str) -> None:
        unknown = sorted(set(node) - known)
        if unknown:
            raise self.fail(prefix + unknown[0], f"is not a recipe key (known here: {', '.join(sorted(known))})")

    def mapping(self, node: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        if not isinstance(node.get(key), dict):
            raise self.fail(prefix + key, "must be a mapping")
        return node[key]

    def sequence(self, node: dict[str, Any], key: str, prefix: str = "") -> list[Any]:
        if not isinstance(node.get(key), list):
            raise self.fail(prefix + key, "must be a list")
        return node[key]

    def string(self, node: dict[str, Any], key: str, prefix: str = "") -> str:
        if not isinstance(node.get(key), str) or not node[key]:
            raise self.fail(prefix + key, "must be a non-empty string")
        return node[key]

    def name(self, node: dict[str, Any]) -> str:
        value = self.string(node, "name")
        if not _RUN_NAME.match(value):
            raise self.fail("name", f"must be a folder name (letters, digits, '_', '.', '-'), not {value!r}")
        return value

    def positive_int(self, node: dict[str, Any], key: str, prefix: str = "", default: int | None = None) -> int:
        value = node.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.fail(prefix + key, f"must be a positive integer, not {value!r}")
        return value

    def number(self, node: dict[str, Any], key: str, prefix: str, default: float | None = None) -> float:
        value = node.get(key, default)
        if isinstance(value, str) and _FLOAT.match(value):
            value = float(value)  # YAML 1.1 reads 1e-4 (no '.', no sign) as a string
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise self.fail(prefix + key, f"must be a non-negative number, not {value!r}")
        return float(value)

    def positive_number(self, node: dict[str, Any], key: str, prefix: str, default: float) -> float:
        value = self.number(node, key, prefix, default)
        if value <= 0:
            raise self.fail(prefix + key, f"must be a positive number, not {value!r}")
        return value

    def flag(self, node: dict[str, Any], key: str, prefix: str, default: bool) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(prefix + key, f"must be true or false, not {value!r}")
        return value

    def count(self, node: dict[str, Any], key: str, prefix: str, default: int) -> int:
        value = node.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(prefix + key, f"must be a non-negative integer, not {value!r}")
        return value

    def augment(self, node: Any) -> Augment:
        p = "data.augment."
        if not isinstance(node, dict):
            raise self.fail("data.augment", "must be a mapping like {hflip: true, pad_crop: 4}")
        self.no_unknown(node, set(Augment.__dataclass_fields__), p)
        rrc = node.get("random_resized_crop", False)
        scale: tuple[float, float] | None = (0.08, 1.0) if rrc is True else None
        if isinstance(rrc, dict):
            self.no_unknown(rrc, {"scale"}, p + "random_resized_crop.")
            value = rrc.get("scale", [0.08, 1.0])
            if not (isinstance(value, list) and len(value) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                    and 0 < value[0] <= value[1] <= 1):
                raise self.fail(p + "random_resized_crop.scale", f"must be [a, b] with 0 < a <= b <= 1, not {value!r}")
            scale = (float(value[0]), float(value[1]))
        elif not isinstance(rrc, bool):
            raise self.fail(p + "random_resized_crop", f"must be true, false or {{scale: [a, b]}}, not {rrc!r}")
        auto = node.get("auto_augment")
        if auto is not None and not (isinstance(auto, str) and _RAND_AUGMENT.match(auto)):
            raise self.fail(p + "auto_augment", f"must be a timm RandAugment spec like rand-m9-mstd0.5, not {auto!r}")
        crop_pct = self.positive_number(node, "eval_crop_pct", p, Augment.eval_crop_pct)
        if crop_pct > 1:
            raise self.fail(p + "eval_crop_pct", f"must be at most 1, not {crop_pct!r}")
        return Augment(random_resized_crop=scale, pad_crop=self.count(node, "pad_crop", p, Augment.pad_crop),
                       hflip=self.flag(node, "hflip", p, Augment.hflip), auto_augment=auto,
                       interpolation=self.choice(node, "interpolation", INTERPOLATIONS, p,
                                                 default=Augment.interpolation),
                       eval_crop_pct=crop_pct)

    def cache(self, node: Any) -> CacheSpec:
        p = "cache."
        if not isinstance(node, dict):
            raise self.fail("cache", "must be a mapping like {dir: runs/cache/r56, views: 8, topk: 10}")
        self.no_unknown(node, set(CacheSpec.__dataclass_fields__), p)
        folder = node.get("dir")
        if folder is not None and not (isinstance(folder, str) and folder):
            raise self.fail(p + "dir", f"must be a folder path, not {folder!r}")
        batch = node.get("batch_size")
        return CacheSpec(dir=folder, views=self.positive_int(node, "views", p, CacheSpec.views),
                         topk=self.positive_int(node, "topk", p, CacheSpec.topk),
                         sparse=self.choice(node, "sparse", SPARSE_MODES, p, default=CacheSpec.sparse),
                         batch_size=None if batch is None else self.positive_int(node, "batch_size", p))

    def runtime(self, node: Any) -> Runtime:
        p = "runtime."
        if not isinstance(node, dict):
            raise self.fail("runtime", "must be a mapping")
        self.no_unknown(node, set(Runtime.__dataclass_fields__), p)
        ema = node.get("ema")
        if ema is not None and not (isinstance(ema, float) and 0 < ema < 1):
            raise self.fail(p + "ema", f"must be a decay between 0 and 1 (e.g. 0.9998) or null, not {ema!r}")
        return Runtime(amp=self.choice(node, "amp", AMP_MODES, p, default=Runtime.amp),
                       channels_last=self.flag(node, "channels_last", p, Runtime.channels_last),
                       compile=self.flag(node, "compile", p, Runtime.compile), ema=ema,
                       workers=self.count(node, "workers", p, Runtime.workers),
                       seed=self.count(node, "seed", p, Runtime.seed),
                       checkpoint_every=self.positive_int(node, "checkpoint_every", p, Runtime.checkpoint_every),
                       log_every=self.positive_int(node, "log_every", p, Runtime.log_every),
                       eval_every=None if node.get("eval_every") is None else self.positive_int(node, "eval_every", p))

    def optimizer(self, node: Any) -> OptimizerSpec:
        p = "optimizer."
        if not isinstance(node, dict):
            raise self.fail("optimizer", "must be a mapping like {momentum: 0.9, nesterov: false}")
        self.no_unknown(node, set(OptimizerSpec.__dataclass_fields__), p)
        spec = OptimizerSpec(momentum=self.number(node, "momentum", p, OptimizerSpec.momentum),
                             nesterov=self.flag(node, "nesterov", p, OptimizerSpec.nesterov),
                             no_decay_norm_bias=self.flag(node, "no_decay_norm_bias", p,
                                                          OptimizerSpec.no_decay_norm_bias))
        if spec.nesterov and not spec.momentum:
            raise self.fail(p + "nesterov", "needs a non-zero `optimizer.momentum`")
        return spec

    def choice(self, node: dict[str, Any], key: str, choices: Sequence[Any], prefix: str = "", *,
               default: Any = None) -> Any:
        value = node.get(key, default)
        if value not in choices:
            raise self.fail(prefix + key, f"must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value

    def teachers(self, node: Any) -> tuple[ModelSpec, ...]:
        """`teacher:` is null, one model mapping, or a list of them (an ensemble sharing one BatchNorm mode)."""
        if node is None:
            return ()
        if not isinstance(node, list):
            return (self.model(node, "teacher"),)
        if not node:
            raise self.fail("teacher", "is an empty list; give one or more models, or null for a supervised recipe")
        members = tuple(self.model(m, f"teacher.{i}") for i, m in enumerate(node))
        if len({m.bn for m in members}) > 1:
            raise self.fail("teacher", "members use different bn modes; an ensemble uses one (train or eval)")
        return members

    def model(self, node: Any, key: str) -> ModelSpec:
        if not isinstance(node, dict):
            raise self.fail(key, "must be a mapping like {model: NAME, pretrained: true}")
        self.no_unknown(node, {"model", "pretrained", "model_args", "bn"}, key + ".")
        bn = self.choice(node, "bn", TEACHER_BN_MODES, key + ".", default=ModelSpec.bn)
        pretrained = node.get("pretrained", ModelSpec.pretrained)
        if not (isinstance(pretrained, bool) or (isinstance(pretrained, str) and pretrained)):
            raise self.fail(key + ".pretrained",
                            f"must be true, false, a path or 'hf-hub:org/name', not {pretrained!r}")
        if not isinstance(node.get("model_args") or {}, dict):
            raise self.fail(key + ".model_args", "must be a mapping of timm.create_model arguments")
        classes = (node.get("model_args") or {}).get("num_classes")
        if classes is not None and not (type(classes) is int and 1 <= classes <= MAX_CLASSES):
            raise self.fail(key + ".model_args.num_classes", f"must be a whole number from 1 to {MAX_CLASSES:,}, not "
                                                             f"{classes!r}")
        return ModelSpec(self.string(node, "model", key + "."), pretrained, dict(node.get("model_args") or {}), bn)

    def source(self, node: Any, key: str, *, supervised: bool) -> DataSource:
        if not isinstance(node, dict):
            raise self.fail(key, "must be a mapping like {source: 'cifar10:train'}")
        self.no_unknown(node, {"source", "labels", "subset"}, key + ".")
        source = DataSource(self.string(node, "source", key + "."),
                            self.flag(node, "labels", key + ".", DataSource.labels), node.get("subset"))
        if ":" not in source.source or source.kind not in SOURCE_KINDS or not source.location:
            raise self.fail(key + ".source", f"must be KIND:LOCATION with KIND one of {', '.join(SOURCE_KINDS)}")
        if source.kind == "cifar10" and source.location not in ("train", "test"):
            raise self.fail(key + ".source", f"must be cifar10:train or cifar10:test, not {source.source!r}")
        if source.subset is not None and parse_subset(str(source.subset)) is None:
            raise self.fail(key + ".subset", f"must be {SUBSET_FORMS}")
        if source.kind == "folder" and (supervised or source.subset is not None):
            raise self.fail(key + ".source", "is a folder: source, which has no labels; a supervised recipe, "
                                             "evaluation and per-class subsets need imagefolder:, list: or cifar10:")
        if supervised and not source.labels:
            raise self.fail(key + ".labels", "must be true: a supervised recipe (and evaluation) needs labels")
        return source

    def stage(self, node: Any, index: int, *, supervised: bool) -> Stage:
        key = f"stages.{index}"
        if not isinstance(node, dict):
            raise self.fail(key, "must be a mapping")
        self.no_unknown(node, set(Stage.__dataclass_fields__), key + ".")
        train = tuple(self.source(s, f"{key}.train.{i}", supervised=supervised)
                      for i, s in enumerate(self.sequence(node, "train", key + ".")))
        if not train:
            raise self.fail(key + ".train", "needs at least one data source")
        return Stage(name=str(node.get("name", f"stage{index + 1}")),
                     epochs=self.positive_int(node, "epochs", key + "."), lr=self.number(node, "lr", key + "."),
                     train=train, warmup_epochs=self.number(node, "warmup_epochs", key + ".", Stage.warmup_epochs),
                     min_lr=self.number(node, "min_lr", key + ".", Stage.min_lr),
                     weight_decay=self.number(node, "weight_decay", key + ".", Stage.weight_decay))
