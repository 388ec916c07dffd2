"""Deprecated alias of `ssld_zoo.train.networks`, which this module was renamed to (it shadowed the `ssld_zoo.models`
layer). `Built` is now `networks.Network`, whose `.model` is `.module`, and `build_model` is `build_network`. Importing
this module warns once; it will be removed in ssld_zoo 0.3.0.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from torch import nn

from ssld_zoo.train.networks import (ModelBuildError, Network, Normalized, TeacherEnsemble, build_network,
                                     build_teacher, freeze_teacher, normalized, num_classes)
from ssld_zoo.train.networks import build_pair as _build_pair
from ssld_zoo.train.recipe import ModelSpec

warnings.warn("ssld_zoo.train.models is deprecated and will be removed in ssld_zoo 0.3.0: import "
              "ssld_zoo.train.networks (build_network, Network.module) instead.", DeprecationWarning, stacklevel=2)

__all__ = ["Built", "ModelBuildError", "Normalized", "TeacherEnsemble", "build_model", "build_pair", "build_teacher",
           "freeze_teacher", "normalized", "num_classes"]


@dataclass
class Built(Network):
    """`networks.Network` under its old name, with `.model` for `.module`."""

    @property
    def model(self) -> nn.Module:
        return self.module


def _old(network: Network) -> Built:
    return Built(network.module, network.architecture, network.model_args)


def build_model(*args: Any, **kwargs: Any) -> Built:
    """`networks.build_network`, returning the old `Built`."""
    return _old(build_network(*args, **kwargs))


def build_pair(student: ModelSpec, teachers: Sequence[ModelSpec], data_root: Any = None) -> tuple[Built, Any]:
    """`networks.build_pair`, returning the old `Built`."""
    network, teacher = _build_pair(student, teachers, data_root)
    return _old(network), teacher
