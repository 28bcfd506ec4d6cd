"""CLI start-up against a real database and Redis: bad keys, an unreachable database or Redis are one-line
errors with nothing written; the SQLite file is private to its owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra.db import Database, make_engine
from connector.infra.models import Merchant
from connector.sandbox.feeds import write_feed
from tests.helpers import free_port


def _merchants(settings: Settings) -> int:
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            return int(session.scalar(select(func.count()).select_from(Merchant)) or 0)
    finally:
        database.dispose()


def _one_line(out: str) -> str:
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize("keys", ["garbage", "{good},not-a-key"])
def test_secret_keys_that_are_not_fernet_keys_are_refused_at_start(cli, settings, monkeypatch, keys):
    monkeypatch.setenv("SECRET_KEYS", keys.format(good=Fernet.generate_key().decode()))
    line = _one_line(cli("merchants", "list", expect=1))
    assert "SECRET_KEYS" in line and "not a Fernet key" in line
    assert "garbage" not in line and "not-a-key" not in line  # the value itself is never echoed


def test_an_unreachable_redis_is_one_line_and_writes_nothing(cli, settings, monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    feed = write_feed(tmp_path / "feed.csv", 3)
    line = _one_line(cli("merchants", "add", "feed", "--name", "shop", "--url", str(feed), expect=1))
    assert "REDIS_URL" in line and "hunter2" not in line
    assert _merchants(settings) == 0


def test_an_unreachable_database_is_one_line(cli, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://storelink:hunter2@127.0.0.1:{free_port()}/nowhere")
    line = _one_line(cli("merchants", "list", expect=1))
    assert "DATABASE_URL" in line and "hunter2" not in line


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_sqlite_database_is_private_to_its_owner(cli, settings, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    old = os.umask(0o022)  # the usual umask, which would leave a new file world-readable
    try:
        cli("merchants", "list")
    finally:
        os.umask(old)
    database = settings.data_dir / "storelink.db"
    files = [p for p in (database, database.with_name("storelink.db-wal")) if p.exists()]
    assert database in files
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_existing_world_readable_sqlite_file_is_narrowed(tmp_path: Path):
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert _mode(path) == 0o600
