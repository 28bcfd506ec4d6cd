"""The code keeps the shape a reader can hold: short modules, short functions, and no import cycle.

Every module of the project (`config`, `connector`, `adapters`, `webhooks`; generated migrations aside) stays
under `MODULE_LINES` lines and every function under `FUNCTION_LINES`; no two modules import each other,
directly or through others (imports made only for type checking aside). The package layers themselves are
import-linter's contracts in pyproject.toml.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).parents[2]
PACKAGES = ("config", "connector", "adapters", "webhooks")
GENERATED = ("connector/infra/migrations/versions/",)
MODULE_LINES = 600
FUNCTION_LINES = 80


def _sources() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if not name.startswith(GENERATED):
                yield name, path.read_text(encoding="utf-8")


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        name: len(text.splitlines()) for name, text in _sources() if len(text.splitlines()) > MODULE_LINES
    }
    assert long == {}, f"modules over {MODULE_LINES} lines: split them by role"


def test_no_function_is_longer_than_the_limit() -> None:
    long: dict[str, int] = {}
    for name, text in _sources():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES:
                    long[f"{name}:{node.lineno} {node.name}"] = length
    assert long == {}, f"functions over {FUNCTION_LINES} lines"


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_among_the_project_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    modules = set(graph.modules)
    imports = {module: set(graph.find_modules_directly_imported_by(module)) & modules for module in modules}
    assert _cycles(imports) == []


def test_the_cycle_finder_finds_a_cycle_through_three_modules() -> None:
    imports = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(imports) == [["a", "b", "c"]]
