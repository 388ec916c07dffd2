"""SSLD training in PyTorch: label-free distillation from a frozen teacher, driven by YAML recipes.

`train(recipe, run_dir)` runs a recipe (see `ssld_zoo.train.recipe` and docs/training.md); `plot_run(run_dir)` draws
its curves. Importing this package is cheap: torch is imported on first use.
"""
from __future__ import annotations

from typing import Any

_LAZY = {"train": "engine", "load_recipe": "recipe", "parse_recipe": "recipe", "Recipe": "recipe",
         "RecipeError": "recipe", "TrainingDivergedError": "engine", "plot_run": "plot"}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ssld_zoo.train' has no attribute '{name}'")
