"""Reservation rows have one writer: no module of the service but `connector.stock.holds` inserts, updates or
constructs a `Reservation` row, nor touches `Reservation.__table__`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "connector" / "stock" / "holds.py"
SOURCES = ("connector", "adapters", "webhooks")
WRITES = {"insert", "update", "delete"}


def _is_reservation(node: ast.AST) -> bool:
    """`Reservation`, `Reservation.__table__` or `models.Reservation` (any alias's attribute)."""
    if isinstance(node, ast.Name):
        return node.id == "Reservation"
    if isinstance(node, ast.Attribute):
        return node.attr == "Reservation" or (node.attr == "__table__" and _is_reservation(node.value))
    return False


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if _is_reservation(func):
                found.append((node.lineno, "Reservation(...)"))
            elif name in WRITES and node.args and _is_reservation(node.args[0]):
                found.append((node.lineno, f"{name}(Reservation)"))
        if isinstance(node, ast.Attribute) and node.attr == "__table__" and _is_reservation(node.value):
            found.append((node.lineno, "Reservation.__table__"))
    return found


def _sources() -> list[Path]:
    return sorted(
        path for top in SOURCES for path in (ROOT / top).rglob("*.py") if "migrations" not in path.parts
    )


def test_only_the_holds_module_writes_reservation_rows() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _sources()
        if path != OWNER
        for line, what in _writes(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert offenders == []


def test_the_scan_sees_every_kind_of_write() -> None:
    source = """
session.add(Reservation(id="r"))
conn.execute(insert(Reservation.__table__), rows)
session.execute(update(Reservation).values(state="released"))
session.execute(sa.update(models.Reservation).values(buyer_ref=None))
"""
    kinds = sorted({what for _line, what in _writes(ast.parse(source))})
    assert kinds == [
        "Reservation(...)",
        "Reservation.__table__",
        "insert(Reservation)",
        "update(Reservation)",
    ]
    assert _writes(ast.parse((OWNER).read_text(encoding="utf-8")))  # the owner does write them


def test_reading_rows_is_not_a_write() -> None:
    source = "session.scalars(select(Reservation).where(Reservation.state == 'active'))"
    assert _writes(ast.parse(source)) == []
