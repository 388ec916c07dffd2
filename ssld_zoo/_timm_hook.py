"""Register the zoo's models with timm as soon as timm is imported, without importing timm ourselves.

timm has no plugin discovery, so a module has to register names before `timm.create_model` can find them. To keep
`import ssld_zoo` free of torch and timm, a `sys.meta_path` finder wraps timm's loader and imports
`ssld_zoo.models` (and `ssld_zoo.convert`, whose first-use conversion `pretrained=True` may need) right after timm
finishes loading. If timm is already imported, registration happens at once.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Sequence


def _register() -> None:
    import ssld_zoo.convert  # noqa: F401  (plugs the first-use conversion of PaddleClas files into the weights layer)
    import ssld_zoo.models  # noqa: F401  (registers every zoo model with timm)


class _TimmLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for finder in [f for f in sys.meta_path if isinstance(f, _TimmFinder)]:
            sys.meta_path.remove(finder)  # timm is loaded: the hook has done its work
        _register()


class _TimmFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        # Find the real spec without recursing into ourselves, and stay in place: a package that only asks whether
        # timm is installed (transformers' `importlib.util.find_spec("timm")`) does not load it, and the import that
        # follows must still register the zoo's names. The loader removes the hook once timm is loaded.
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _TimmLoader(spec.loader)
        return spec


def install() -> None:
    """Register now if timm is loaded, else arrange registration for when it is."""
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _TimmFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TimmFinder())
