"""The house rules that keep digitlab readable, checked on the source: no import cycle between its modules (at
module level or inside functions), no function longer than about a screen, no module longer than about 400 lines
(one concept each, readable top to bottom), every module opening with a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "digitlab"
MAX_FUNCTION_LINES = 70
MAX_MODULE_LINES = 400


def modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def imported(tree: ast.Module, names: set[str]) -> set[str]:
    """digitlab modules a module imports anywhere in its body (relative or absolute)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and module:
                found.add(module.split(".")[0])
            elif node.level == 1:  # from . import x
                found |= {alias.name for alias in node.names}
            elif module.startswith("digitlab."):
                found.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("digitlab.")}
    return found & names


def test_no_import_cycles():
    trees = modules()
    graph = {name: imported(tree, set(trees)) - {name} for name, tree in trees.items()}
    graph["__init__"] = set()  # the package's own re-exports of config and errors sit below everything
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join(path + [name, dep])
            if dep not in state:
                visit(dep, path + [name])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_cycle_detector_finds_a_cycle(tmp_path):
    a = ast.parse("from .b import x")
    b = ast.parse("def f():\n    from .a import y")
    assert imported(a, {"a", "b"}) == {"b"} and imported(b, {"a", "b"}) == {"a"}


def test_no_function_over_a_screen():
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, long


def test_no_module_over_400_lines():
    long = {p.name: n for p in PACKAGE.glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these into one module per concept: {long}"


def test_every_module_opens_with_a_docstring():
    missing = [name for name, tree in modules().items() if not ast.get_docstring(tree)]
    assert not missing
