"""Every file the package writes goes through `ssld_zoo.files` (see its docstring): this test reads every module with
`ast` and fails on any other way of putting a file under a final name.

- Refused outside `files.py`: `open` (builtin, `os.fdopen`, `Path.open`, `tarfile.open`, ...) with a mode that
  writes ("w", "a", "x", "+") unless it opens a temporary name (below), `os.open` with a writing flag,
  `os.replace`, `os.rename`, `os.renames`, `os.link`, `os.symlink`, `shutil.move`, `Path.write_text`,
  `Path.write_bytes`, and `Path.rename` / `Path.replace` (a statement `x.rename(y)` or `x.replace(y)` with one
  argument: `str.replace` takes two, and a method of that name whose result is used is no rename).
- Library writers (`save_file`, `torch.save`, `savefig`, numpy's `save`/`savez`, `shutil.copy*`) must write to a
  temporary name: their destination must name a variable bound by `atomic_path`, `atomic_file`, `staging_folder`,
  `temporary_path`, `temporary_weights_path` or `tempfile.TemporaryDirectory` in the same function or one around it
  (or computed from one), or an `io.BytesIO`.

`ALLOWED` lists the exceptions, each with its reason; an entry that no longer matches anything fails too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ssld_zoo"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "files.py" or p.parent != PACKAGE)

ALLOWED: dict[tuple[str, str], str] = {
    ("weights/download.py", "open(..., write mode)"):
        "the resumable DEST.part file: kept between attempts on purpose (the next one resumes it with an HTTP Range "
        "request) and published to DEST with files.publish only when complete",
    ("console.py", "os.open(..., write flag)"):
        "opens /dev/null to silence stdout after a broken pipe (`ssld-zoo list | head`); writes no file",
}

FINAL_NAME_CALLS = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("os", "link"), ("os", "symlink"),
                    ("shutil", "move")}
WRITING_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}
TEMPORARY_MAKERS = {"atomic_path", "atomic_file", "staging_folder", "temporary_path", "temporary_weights_path",
                    "TemporaryDirectory", "mkdtemp", "BytesIO"}
# writer -> (position, keyword) of its destination argument
WRITERS = {"save_file": (1, "filename"), "savefig": (0, "fname"), "save": (1, "f"), "savez": (0, "file"),
           "savez_compressed": (0, "file"), "copyfile": (1, "dst"), "copy": (1, "dst"), "copy2": (1, "dst"),
           "copytree": (1, "dst")}
WRITER_MODULES = {"save": {"torch", "np", "numpy"}, "savez": {"np", "numpy"}, "savez_compressed": {"np", "numpy"},
                  "copyfile": {"shutil"}, "copy": {"shutil"}, "copy2": {"shutil"}, "copytree": {"shutil"}}


def _call_name(call: ast.Call) -> tuple[str | None, str]:
    """(`module` or None, `name`) of `module.name(...)` / `obj.name(...)` / `name(...)`."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return (func.value.id if isinstance(func.value, ast.Name) else None), func.attr
    return None, func.id if isinstance(func, ast.Name) else ""


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _strings(node: ast.AST | None) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)] if node \
        else []


def _names(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)} if node else set()


def _temporary_names(function: ast.AST) -> set[str]:
    """Variables of `function` bound to a temporary name, or computed from one."""
    names: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name) \
                and isinstance(node.context_expr, ast.Call) and _call_name(node.context_expr)[1] in TEMPORARY_MAKERS:
            names.add(node.optional_vars.id)
    assignments = [n for n in ast.walk(function) if isinstance(n, ast.Assign)]
    while True:
        grown = set(names)
        for node in assignments:
            value_calls = [n for n in ast.walk(node.value) if isinstance(n, ast.Call)]
            if _names(node.value) & names or any(_call_name(c)[1] in TEMPORARY_MAKERS for c in value_calls):
                grown |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if grown == names:
            return names
        names = grown


def _problems(call: ast.Call, temporary: set[str], statement: bool = True) -> list[str]:
    """What `call` does that only `ssld_zoo.files` may do ([] when nothing); `statement`: its result is unused."""
    module, name = _call_name(call)
    if (module, name) in FINAL_NAME_CALLS:
        return [f"{module}.{name}"]
    if name in ("write_text", "write_bytes") and isinstance(call.func, ast.Attribute):
        return [f"Path.{name}"]
    if name in ("rename", "replace") and isinstance(call.func, ast.Attribute) and len(call.args) == 1 \
            and not call.keywords and statement:
        return [f"Path.{name}"]
    if name == "open" and module == "os":
        return ["os.open(..., write flag)"] if _names(_argument(call, 1, "flags")) & WRITING_FLAGS else []
    if name in ("open", "fdopen"):
        position = 0 if isinstance(call.func, ast.Attribute) and module not in ("io", "os") else 1
        mode = _argument(call, position, "mode")
        into_temporary = any(_names(a) & temporary for a in [*call.args, *(k.value for k in call.keywords)])
        writes = any(set(s) & set("wax+") for s in _strings(mode))
        return ["open(..., write mode)"] if writes and not into_temporary else []
    if name in WRITERS and (name not in WRITER_MODULES or module in WRITER_MODULES[name]):
        destination = _argument(call, *WRITERS[name])
        if destination is not None and not _names(destination) & temporary:
            return [f"{name} to a non-temporary name"]
    return []


def _found() -> dict[tuple[str, str], list[int]]:
    """(module, problem) -> the lines where it occurs, over the whole package but `files.py`."""
    found: dict[tuple[str, str], list[int]] = {}

    def visit(node: ast.AST, module: str, temporary: set[str], statement: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            temporary = temporary | _temporary_names(node)
        if isinstance(node, ast.Call):
            for problem in _problems(node, temporary, statement):
                found.setdefault((module, problem), []).append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, module, temporary, isinstance(node, ast.Expr))

    for path in MODULES:
        visit(ast.parse(path.read_text(encoding="utf-8")), path.relative_to(PACKAGE).as_posix(), set(), False)
    return found


FOUND = _found()


def test_files_are_written_only_through_ssld_zoo_files():
    unexplained = {f"ssld_zoo/{module}:{lines}: {problem}" for (module, problem), lines in FOUND.items()
                   if (module, problem) not in ALLOWED}
    assert not unexplained, ("write through ssld_zoo.files (atomic_path, atomic_file, write_text_atomic, "
                             f"temporary_path + publish) instead: {sorted(unexplained)}")


@pytest.mark.parametrize("entry", sorted(ALLOWED))
def test_each_allowed_write_is_still_there(entry: tuple[str, str]):
    assert entry in FOUND, f"{entry} no longer occurs: remove it from ALLOWED"


@pytest.mark.parametrize("source, problem", [
    ("open(path, 'w')", "open(..., write mode)"),
    ("open(path, mode='ab' if resume else 'wb')", "open(..., write mode)"),
    ("Path(p).open('a')", "open(..., write mode)"),
    ("os.open(p, os.O_WRONLY | os.O_CREAT)", "os.open(..., write flag)"),
    ("os.replace(a, b)", "os.replace"),
    ("shutil.move(a, b)", "shutil.move"),
    ("path.write_text('x')", "Path.write_text"),
    ("path.replace(other)", "Path.replace"),
    ("torch.save(state, out)", "save to a non-temporary name"),
    ("fig.savefig(out)", "savefig to a non-temporary name"),
    ("save_file(tensors, str(out))", "save_file to a non-temporary name"),
])
def test_the_check_catches_each_kind_of_write(source: str, problem: str):
    tree = ast.parse(f"def f(path, out, other, a, b, p, fig, state, tensors, resume):\n    {source}\n")
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and _problems(n, set()))
    assert _problems(call, _temporary_names(tree)) == [problem]


@pytest.mark.parametrize("source", [
    "with atomic_path(out) as tmp:\n        torch.save(state, tmp)",
    "tmp = temporary_path(out)\n    save_file(tensors, os.fspath(tmp))",
    "with staging_folder(out) as staging:\n        staged = Path(staging) / out.name\n        fig.savefig(staged)",
    "open(path)",
    "open(path, 'rb')",
    "text.replace('a', 'b')",
    "Image.open(path)",
    "new = target.rename(key)",
    "buffer = io.BytesIO()\n    torch.save(state, buffer)",
    "with atomic_file(out) as f, tarfile.open(fileobj=f, mode='w') as tar:\n        tar.addfile(info)",
])
def test_writes_to_temporary_names_and_reads_pass(source: str):
    tree = ast.parse(f"def f(path, out, text, fig, state, tensors, target, key):\n    {source}\n")
    temporary = _temporary_names(tree)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assigned = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)}
    assert [p for c in calls for p in _problems(c, temporary, id(c) not in assigned)] == []
