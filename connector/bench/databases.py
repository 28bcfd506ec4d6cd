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


def drop_fresh(database_url: str | None, url: str) -> None:
    """Remove what `fresh_url` made: the SQLite file (with its journal files) or the PostgreSQL schema, so a
    later round under the same name starts from empty again."""
    if not database_url:
        path = Path(url.removeprefix("sqlite:///"))
        for leftover in (
            path,
            *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")),
        ):
            leftover.unlink(missing_ok=True)
        return
    from sqlalchemy import create_engine, text

    schema = url.rsplit("%3D", 1)[1]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
