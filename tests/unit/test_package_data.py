"""The package data pyproject.toml ships: every glob names files that exist (a stale glob hides a missing file)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_data_glob_matches_a_file() -> None:
    package_data: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["package-data"]
    assert package_data
    empty = [
        f"{package}: {pattern}"
        for package, patterns in package_data.items()
        for pattern in patterns
        if not any(path.is_file() for path in (ROOT / package).glob(pattern))
    ]
    assert empty == []
