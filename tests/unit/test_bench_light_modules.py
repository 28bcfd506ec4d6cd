"""The modules a benchmark's spawned processes import stay light: a load process (and the platform receiver's
process) imports its target's module afresh, so that module loads no database, web, queue, console or
settings library, nor an HTTP client; each is imported here in a fresh interpreter, as a spawned process
does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HEAVY = ("sqlalchemy", "flask", "rq", "rich", "pydantic", "requests")

# Each module whose functions are the targets of spawned processes (or pickled into them), with the heavy
# packages it needs for its work.
SPAWNED: dict[str, tuple[str, ...]] = {
    "connector.bench.load": (),  # flood's load processes, and run_processes
    "connector.bench.signed_pushes": (),  # the webhooks and scale floods' request builder
    "connector.bench.buyers": (),  # the flash sale's buyers
    "connector.bench.visitors": (),  # the clicks bench's visitors
    "connector.bench.readers": (),  # the showcase bench's readers
    "connector.bench.platform_receivers": ("flask",),  # the sandbox platform receiver is a Flask app
}


def _loaded_after_import(module: str) -> set[str]:
    check = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", sorted(SPAWNED))
def test_a_spawned_process_module_imports_no_heavy_package(module: str) -> None:
    loaded = _loaded_after_import(module)

    assert module in loaded
    heavy = {name for name in HEAVY if name in loaded and name not in SPAWNED[module]}
    assert heavy == set(), f"{module} imports {sorted(heavy)}"


def test_a_bench_says_when_its_processes_would_compile_what_they_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.bench.processes import bytecode_note

    (tmp_path / "uncached_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert bytecode_note(("uncached_mod",)) is None, "caches get written: nothing to say"
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    note = bytecode_note(("uncached_mod",))
    assert note is not None and "PYTHONDONTWRITEBYTECODE" in note and "uncached_mod" in note
    import py_compile

    py_compile.compile(str(tmp_path / "uncached_mod.py"))
    assert bytecode_note(("uncached_mod",)) is None, "a cache is there: nothing to say"
