"""The package's folders are its layers, and each imports only from the layers below it (docs/architecture.md).

Read from the source with `ast` (every import, the ones inside functions included), so a lazy import cannot hide
an upward dependency. Entry points (`__main__` modules and the package facade, `ssld_zoo/__init__.py` with its timm
hook) sit above every layer.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ssld_zoo"
FOUNDATION = ("errors", "files", "paths", "version", "console")
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
