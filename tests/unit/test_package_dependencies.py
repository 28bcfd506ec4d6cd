"""`pip install .` is all `storelink demo` and `storelink sandbox` need (the README's first command): every
third-party module the package imports, the store emulators' GraphQL library included, comes with the
package's base dependencies (no extra) or theirs."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
PROJECT = ("config", "connector", "adapters", "webhooks")
NOT_INSTALLED = {"__future__", "_typeshed"}  # typing-only names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported() -> set[str]:
    """Top-level names of the third-party modules the package's code imports."""
    found: set[str] = set()
    for package in PROJECT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {name for name in found - set(PROJECT) - NOT_INSTALLED if name not in sys.stdlib_module_names}


def _base_requirements(distribution: str) -> set[str]:
    wanted = set()
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            wanted.add(_normalized(requirement.name))
    return wanted


def _installed_by_pip_install_dot() -> set[str]:
    closure: set[str] = set()
    todo = list(_base_requirements("storelink"))
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo += _base_requirements(name)
    return closure


def test_every_imported_module_comes_with_the_base_dependencies() -> None:
    installed = _installed_by_pip_install_dot()
    providers = metadata.packages_distributions()
    missing = {
        module: sorted(providers.get(module, []))
        for module in _imported()
        if not {_normalized(dist) for dist in providers.get(module, [])} & installed
    }
    assert missing == {}, "imported but not installed by `pip install .` (add to [project] dependencies)"
