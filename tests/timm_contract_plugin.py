"""A pytest plugin that narrows timm's own model tests (`tests/test_models.py` of timm's sdist) to the zoo's own
architectures: loaded with `-p timm_contract_plugin` before that file is collected, it makes `timm.list_models`
and `timm.list_pretrained` answer with zoo architectures only (`ZOO_ARCHITECTURES` in the environment, comma
separated), so every parametrized test of that file runs on them and on nothing else."""
from __future__ import annotations

import os

import timm
import timm.models

import ssld_zoo.models  # noqa: F401  (registers the zoo's architectures with timm)

ZOO = [name for name in os.environ.get("ZOO_ARCHITECTURES", "").split(",") if name]
_list_models = timm.list_models


def list_models(filter="", module="", pretrained=False, exclude_filters="", name_matches_cfg=False,  # noqa: A002
                include_tags=None):
    if pretrained:
        return []  # the zoo's pretrained weights are tested by the zoo's own suite, offline
    # `module` names timm's families that implement forward_intermediates; every zoo architecture does, so it is
    # not narrowed by it
    found = _list_models(filter=filter or "", exclude_filters=exclude_filters or "",
                         name_matches_cfg=name_matches_cfg, include_tags=False)
    return [name for name in found if name in ZOO]


def list_pretrained(filter="", exclude_filters=""):  # noqa: A002
    return []


for target in (timm, timm.models):
    target.list_models = list_models
    target.list_pretrained = list_pretrained
