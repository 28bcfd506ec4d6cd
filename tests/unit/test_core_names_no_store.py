"""The core names no store: every store lives behind the adapter port, so a third one needs no core edit.

A `.py` file under `connector/` (outside the store emulators in `connector/sandbox/`, and the benchmarks in
`connector/bench/` and the demo in `connector/demo/`, which drive them) fails when it names a store
(`shopify`, `walmart`, case-insensitive) or one of their header and topic spellings (`x-shopify-`, `wm_`).
The one narrow exception: a comment or docstring line that names stores as examples, marked with `e.g.` on
that line (`kind: "Store kind, e.g. shopify, …"`).

`ALLOWED` lists what is not moved behind the port yet, file by file with the number of lines allowed; it
may only shrink.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
CORE = ROOT / "connector"
EXEMPT_DIRS = ("sandbox", "bench", "demo")
STORE_NAMES = re.compile(r"shopify|walmart|x-shopify-|\bwm_", re.IGNORECASE)
EXAMPLE = re.compile(r"\be\.g\.", re.IGNORECASE)

ALLOWED: dict[str, int] = {}
"""Core files still naming a store, with the lines allowed (shrinking: lower the number as they move)."""


def _offending_lines() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[1] in EXEMPT_DIRS:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if STORE_NAMES.search(line) and not EXAMPLE.search(line):
                found.setdefault(relative.as_posix(), []).append(f"{number}: {line.strip()}")
    return found


def test_the_core_names_no_store_outside_the_allow_list() -> None:
    found = _offending_lines()
    beyond = {name: lines for name, lines in found.items() if len(lines) > ALLOWED.get(name, 0)}
    assert beyond == {}, "store names in the core (move them behind the adapter port):\n" + "\n".join(
        f"{name}:{line}" for name, lines in beyond.items() for line in lines
    )


def test_the_allow_list_only_shrinks() -> None:
    found = _offending_lines()
    stale = {name: (allowed, len(found.get(name, []))) for name, allowed in ALLOWED.items()}
    assert {name: counts for name, counts in stale.items() if counts[0] != counts[1]} == {}, (
        "lower ALLOWED to what is left (allowed, found)"
    )


def test_the_rule_catches_store_names_and_their_header_spellings() -> None:
    for line in ('topic = headers.get("x-shopify-topic")', "KIND = 'Walmart'", "key = 'WM_SVC.NAME'"):
        assert STORE_NAMES.search(line) and not EXAMPLE.search(line), line
    assert EXAMPLE.search('description="Store kind, e.g. shopify, walmart, feed."')
