"""The package's folders are its layers, and each imports only from the layers below it (docs/architecture.md).

Read from the source with `ast` (every import, the ones inside functions included), so a lazy import cannot hide
an upward dependency. Entry points (`__main__` modules and the package facade, `ssld_zoo/__init__.py` with its timm
hook) sit above every layer.

Other packages' private names (a `_` module or name: `timm.models._builder`) are refused too, wherever the package
exports the name publicly (`from timm.models import build_model_with_cfg`); `THIRD_PARTY_PRIVATE` lists the few that
have no public home, each with its reason.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ssld_zoo"
FOUNDATION = ("errors", "files", "paths", "version", "console", "reading", "settings", "reporting")
LAYERS = ("catalogue", "weights", "models", "convert", "data", "train", "tools", "cli")  # bottom to top
FACADE = {"ssld_zoo", "ssld_zoo._timm_hook"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every ssld_zoo import in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ssld_zoo"):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.startswith("ssld_zoo")]
    return found


def layer(module: str) -> int:
    """0 for the foundation modules, 1.. for the layers bottom to top, a large number for entry points."""
    if module in FACADE or module.endswith(".__main__"):
        return 99
    first = module.split(".")[1]
    if first in FOUNDATION:
        return 0
    assert first in LAYERS, f"{module} is in no layer: put it in one of {LAYERS} or the foundation {FOUNDATION}"
    return 1 + LAYERS.index(first)


# (module, name imported from it or None): why it is imported although private. Nothing else private of another
# package may be imported.
THIRD_PARTY_PRIVATE = {
    ("timm.models._builder", "pretrained_cfg_for_features"):
        "the features_only cfg timm's own families build with; timm.models does not export it",
    ("timm.models._features", "feature_take_indices"):
        "the index rule of timm's forward_intermediates contract, which every timm family imports from here; "
        "not exported",
    ("timm.models._efficientnet_builder", "decode_arch_def"):
        "the block-string decoder of timm's MobileNet/EfficientNet builders; not exported",
    ("timm.models._efficientnet_blocks", "SqueezeExcite"):
        "the SE block of timm's MobileNetV3 (its parameter names match timm's weights); timm.layers.SqueezeExcite "
        "is a different module",
    ("timm.models.mobilenetv3", "_gen_lcnet"):
        "timm's LCNet generator for any width multiplier; its exported entrypoints fix the multiplier, and "
        "PaddleClas's 0.25 and 2.5 have none",
    ("timm.models._manipulate", "group_with_matcher"):
        "groups a chosen list of parameter names (the trainable ones); the exported group_parameters takes every "
        "parameter of a module",
    ("_codecs", None): "the restricted .pdparams reader resolves `_codecs.encode`, which pickles of bytes name",
    ("_compat_pickle", None): "pickle's own table of Python 2 names, for the restricted .pdparams reader",
    ("numpy._core.multiarray", "_reconstruct"): "the array constructor numpy 2 pickles name, for the restricted reader",
    ("numpy.core.multiarray", "_reconstruct"): "the same constructor under numpy 1's path",
}


def third_party_imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every import of another package in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                node.module.split(".")[0] not in ("ssld_zoo", "__future__"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.split(".")[0] != "ssld_zoo"]
    return found


def is_private(module: str, name: str | None) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in [*module.split("."), name or ""])


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def target_module(module: str, name: str | None) -> str:
    """The module an import refers to (`from ssld_zoo.weights import hub` is module `ssld_zoo.weights.hub`)."""
    return f"{module}.{name}" if name and f"{module}.{name}" in MODULES else module


def test_the_root_holds_only_the_facade_and_the_foundation():
    root = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert root == sorted(["__init__", "__main__", "_timm_hook", *FOUNDATION])
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()) == sorted(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_from_its_own_layer_or_below(module):
    upward = [f"line {line}: {target_module(m, n)}" for m, n, line in GRAPH[module]
              if layer(target_module(m, n)) > layer(module)]
    assert not upward, f"{module} (layer {layer(module)}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_another_packages_private_names(module):
    package = module.split(".")[:2]
    private = [f"line {line}: {m}.{n}" if n else m for m, n, line in GRAPH[module]
               if (target_module(m, n).split(".")[:2] != package or module in FACADE)
               and any(part.startswith("_") and not part.startswith("__")
                       for part in [*target_module(m, n).split("."), *([n] if n and f"{m}.{n}" not in MODULES else [])])
               and target_module(m, n) != "ssld_zoo._timm_hook"]
    assert not private, f"{module} imports private names of another package: {private}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_third_party_private_names_that_have_a_public_home(module):
    private = [f"line {line}: {m}" + (f" import {n}" if n else "")
               for m, n, line in third_party_imports(MODULES[module])
               if is_private(m, n) and (m, n) not in THIRD_PARTY_PRIVATE]
    assert not private, (f"{module} imports private names of another package: {private}; import the public name "
                         "(e.g. `from timm.models import build_model_with_cfg`), or, where the package has none, add "
                         "it to THIRD_PARTY_PRIVATE with the reason")


def test_every_allowed_private_import_is_used_and_still_private():
    """The allow-list holds nothing stale: each entry is imported somewhere, and the package still exports no public
    name for it."""
    import importlib
    used = {(m, n) for path in MODULES.values() for m, n, _ in third_party_imports(path)}
    assert set(THIRD_PARTY_PRIVATE) - {("numpy.core.multiarray", "_reconstruct")} <= used
    for module, name in THIRD_PARTY_PRIVATE:
        top = module.split(".")[0]
        if top == "timm" and name and not name.startswith("_"):  # a public name in a private module
            public = importlib.import_module(".".join(p for p in module.split(".") if not p.startswith("_")))
            assert not hasattr(public, name), f"{public.__name__} exports {name} now: import it from there"


def test_no_import_cycles():
    edges = {name: {target_module(m, n) for m, n, _ in deps if target_module(m, n) in MODULES and
                    target_module(m, n) != name} for name, deps in GRAPH.items()}
    for name in edges:  # a package imports its own modules and they import it: not a cycle of layers
        edges[name] = {t for t in edges[name] if not (t.startswith(name + ".") or name.startswith(t + ".")
                                                      and MODULES[t].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_a_cycle_and_an_upward_import_would_be_caught(tmp_path):
    """The checks above can fail: an upward import is recognised, and so is a cycle."""
    assert layer("ssld_zoo.tools.evaluate") > layer("ssld_zoo.weights.hub") > layer("ssld_zoo.errors")
    assert target_module("ssld_zoo.weights", "hub") == "ssld_zoo.weights.hub"
    code = tmp_path / "m.py"
    code.write_text("def f():\n    from ssld_zoo.cli import main\n")
    assert imports(code) == [("ssld_zoo.cli", "main", 2)]
