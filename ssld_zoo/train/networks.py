"""The student and teacher networks of a recipe: built by name, loaded from any weight source, wrapped with their
own input normalisation; the teacher frozen.

A `ModelSpec.model` is a zoo name (`ssld_zoo.create`), a timm name, or `hf-hub:org/name` (architecture from the
repo's `config.json`). `pretrained` is False, True (the zoo's or timm's weights), `hf-hub:org/name[@rev]`, a
`.safetensors` file, a Hub-layout folder (sha256-checked against its `config.json`), or a torch checkpoint
(`.pth`/`.pt`/`.th`/`.bin`, read with `torch.load(weights_only=True)`; a `state_dict`/`model`/`student` wrapper and
DataParallel's `module.` prefix are accepted).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import timm
import torch
from torch import nn

from ssld_zoo.catalogue.registry import get_weight_entry
from ssld_zoo.errors import ModelBuildError, UnknownModelError
from ssld_zoo.models.factory import create, load_model, model_args_of
from ssld_zoo.weights.resolve import names_its_model, resolve
from ssld_zoo.weights.sources import pretrained_cfg_for
from ssld_zoo.train.recipe import ModelSpec


@dataclass
class Network:
    """A bare network (no input normalisation) and how to build it again: timm `architecture` + `model_args`
    (without num_classes), which its exported `config.json` records."""

    module: nn.Module
    architecture: str
    model_args: dict[str, Any] = field(default_factory=dict)


class Normalized(nn.Module):
    """`model((x - mean) / std)` for images in [0, 1]: each model brings its own input normalisation."""

    if TYPE_CHECKING:  # registered buffers (class annotations would change what TorchScript sees)
        mean: torch.Tensor
        std: torch.Tensor

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """`(x - mean) / std`, the input `model` takes."""
        return (x - self.mean).div_(self.std)

    def same_normalization(self, other: "Normalized") -> bool:
        """Whether `other` normalises its input exactly as this one does (one normalised batch serves both)."""
        return torch.equal(self.mean, other.mean) and torch.equal(self.std, other.std)


def unit_pixels(images: torch.Tensor, device: torch.device | str,
                memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """A uint8 [0, 255] NCHW batch as float32 in [0, 1] on `device`, in `memory_format`: what `Normalized` takes.
    The layout changes on the uint8 bytes (a quarter of the float's), and one division makes the floats."""
    return images.to(device, non_blocking=True).contiguous(memory_format=memory_format).div(255)


def normalized(model: nn.Module) -> Normalized:
    """`model` wrapped with the mean/std of its pretrained cfg (ImageNet's when it has none)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return Normalized(model, tuple(cfg.get("mean") or IMAGENET_DEFAULT_MEAN),
                      tuple(cfg.get("std") or IMAGENET_DEFAULT_STD))


def _zoo_entry(name: str) -> Any:
    from ssld_zoo.catalogue.registry import get_model_entry
    try:
        return get_model_entry(name)
    except UnknownModelError:
        return None


def build_network(spec: ModelSpec, role: str, data_root: str | os.PathLike | None = None, *,
                  cache_dir: str | os.PathLike | None = None) -> Network:
    """The bare network of a recipe's `student` or `teacher` (`role`), with its weights (zoo weights kept in the data
    folder, like the CIFAR-10 teachers, are looked up in `data_root`, else `$SSLD_ZOO_DATA`; Hub files go to the Hub
    cache, `cache_dir` or else HF_HUB_CACHE). Weights come from `weights.resolve` and load through
    `models.load_model`, as for every command."""
    name, pretrained, args = spec.model, spec.pretrained, dict(spec.model_args)
    entry = _zoo_entry(name)
    own = None
    if entry is None and not timm.is_model(name):
        if not names_its_model(name):
            raise ModelBuildError(f"{role}.model '{name}' is neither a zoo model (`ssld-zoo list`) nor a timm model "
                                  "(`timm.list_models()`).", key=f"{role}.model")
        own = resolve(name, catalogue=False, cache_dir=cache_dir, data_root=data_root)
        if own.model_name is None:
            raise ModelBuildError(f"{role}.model '{name}' has no config.json naming its timm architecture.",
                                  key=f"{role}.model")
        name = own.model_name
        entry = _zoo_entry(name)
        if own.weight is None:
            args = {**model_args_of(own), "num_classes": own.pretrained_cfg.get("num_classes"), **args}
    architecture = entry.architecture if entry else name
    recorded = {**(entry.model_args if entry else {}), **{k: v for k, v in args.items() if k != "num_classes"}}
    args = {k: v for k, v in args.items() if v is not None}
    if pretrained is True and own is not None:
        weights = own
    elif isinstance(pretrained, str):
        weights = resolve(pretrained, catalogue=False, checkpoints=True, cache_dir=cache_dir, data_root=data_root)
    elif pretrained is True and entry is not None:
        weights = resolve(get_weight_entry(name), cache_dir=cache_dir, data_root=data_root)
    else:  # random init, or a timm model's own weights
        model = (create(name, **args) if entry is not None else
                 timm.create_model(name, pretrained=bool(pretrained),
                                   cache_dir=None if cache_dir is None else Path(cache_dir), **args))
        return Network(model, architecture, recorded)
    cfg = pretrained_cfg_for(get_weight_entry(name)) if entry is not None else None  # as `create` reads a file
    return Network(load_model(weights, name, cfg=cfg, **args), architecture, recorded)


def freeze_teacher(teacher: nn.Module, bn: str) -> None:
    """Freeze every parameter and put the teacher in eval mode; with `bn: train` its BatchNorm layers normalise with
    batch statistics (PaddleClas SSLD) but keep their running statistics (momentum 0), so the teacher never changes."""
    teacher.requires_grad_(False)
    teacher.eval()
    if bn == "train":
        for module in teacher.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()
                module.momentum = 0.0


def num_classes(model: nn.Module) -> int:
    """The classifier size of a timm model."""
    value = getattr(model, "num_classes", None)
    if not isinstance(value, int):
        raise ModelBuildError(f"{type(model).__name__} has no integer `num_classes`; use a timm classification model.")
    return value


class TeacherEnsemble(nn.Module):
    """Several frozen teachers as one: the log of their averaged class probabilities, each member normalising the
    [0, 1] input with its own mean/std. The output works as logits (its softmax is the averaged distribution)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(normalized(m) for m in members)
        self.num_classes = num_classes(members[0])
        self.pretrained_cfg = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # the members normalise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(x).float(), dim=-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def build_teacher(teachers: Sequence[ModelSpec], data_root: str | os.PathLike | None = None) -> nn.Module:
    """The bare, frozen teacher of a recipe: one model, or a `TeacherEnsemble` of its members (same classes)."""
    models = [build_network(spec, f"teacher.{i}" if len(teachers) > 1 else "teacher", data_root).module
              for i, spec in enumerate(teachers)]
    for spec, model in zip(teachers[1:], models[1:]):
        if num_classes(model) != num_classes(models[0]):
            raise ModelBuildError(f"The teacher members '{teachers[0].model}' and '{spec.model}' predict "
                                  f"{num_classes(models[0])} and {num_classes(model)} classes; an ensemble "
                                  "averages them class by class.")
    teacher = models[0] if len(models) == 1 else TeacherEnsemble(models)
    freeze_teacher(teacher, teachers[0].bn)
    return teacher


def build_pair(student: ModelSpec, teachers: Sequence[ModelSpec],
               data_root: str | os.PathLike | None = None) -> tuple[Network, Normalized | None]:
    """The bare student network (trainable) and the frozen, normalised teacher (None for a supervised recipe)."""
    network = build_network(student, "student", data_root)
    if not teachers:
        return network, None
    frozen = build_teacher(teachers, data_root)
    if num_classes(frozen) != num_classes(network.module):
        names = " + ".join(t.model for t in teachers)
        raise ModelBuildError(f"The teacher '{names}' predicts {num_classes(frozen)} classes and the student "
                              f"'{student.model}' {num_classes(network.module)}; set student.model_args.num_classes "
                              f"to {num_classes(frozen)} (distillation matches them class by class).")
    return network, normalized(frozen)
