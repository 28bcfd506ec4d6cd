"""Throwaway databases for benchmarks: a fresh SQLite file, or a fresh schema of the PostgreSQL given."""

from __future__ import annotations

import time
from pathlib import Path


def fresh_url(database_url: str | None, workdir: Path, name: str) -> str:
    if not database_url:
        return f"sqlite:///{workdir / name}.db"
    from sqlalchemy import create_engine, text

    schema = f"bench_{name}_{int(time.time())}"
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in database_url else "?"
    return f"{database_url}{sep}options=-csearch_path%3D{schema}"


def drop_schema(database_url: str | None, url: str) -> None:
    if not database_url:
        return
    from sqlalchemy import create_engine, text

    schema = url.rsplit("%3D", 1)[1]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
