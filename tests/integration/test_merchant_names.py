"""Merchant names are unique: the CLI refuses a taken name, and the migration renames existing duplicates."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from connector.infra.db import make_engine
from connector.infra.migrate import upgrade
from connector.sandbox.feeds import write_feed
from tests.conftest import BACKENDS, normalize_pg


def test_a_taken_name_is_refused_and_nothing_is_written(cli, tmp_path: Path):
    first = write_feed(tmp_path / "first.csv", 3)
    second = write_feed(tmp_path / "second.csv", 3)
    cli("merchants", "add", "feed", "--name", "acme", "--url", str(first), "--no-sync")
    out = cli("merchants", "add", "feed", "--name", " acme ", "--url", str(second), expect=1)
    assert "merchant name 'acme' is taken by merchant 1" in out and "[merchant_name_taken]" in out
    assert "Traceback" not in out
    listed = json.loads(cli("merchants", "list", "--json"))
    assert [(m["id"], m["name"]) for m in listed] == [(1, "acme")]
    assert json.loads(cli("jobs", "failed", "--json"))["sync_runs"] == []


@pytest.fixture(params=BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database with no schema yet, one run per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL not set")
    admin_url = normalize_pg(base)
    schema = f"names_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in admin_url else "?"
        yield f"{admin_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_migration_renames_later_duplicates_with_their_id(blank_url: str):
    engine = make_engine(blank_url)
    try:
        upgrade(engine, "0003")
        now = datetime.now(UTC)
        rows = [
            (1, "acme"),
            (2, "acme"),
            (3, "globex"),
            (4, "acme-5"),  # the name the fifth would get is taken: it gets acme-5-2
            (5, "acme"),
        ]
        with engine.begin() as conn:
            for merchant_id, name in rows:
                conn.execute(
                    text(
                        "INSERT INTO merchants (id, kind, store_ref, name, status, config, inventory_buffer,"
                        " price_rules, created_at, updated_at) VALUES (:id, 'feed', :ref, :name,"
                        " 'installed', '{}', 0, '{}', :now, :now)"
                    ),
                    {"id": merchant_id, "ref": f"/feeds/{merchant_id}.csv", "name": name, "now": now},
                )
        upgrade(engine)
        with engine.connect() as conn:
            names = dict(conn.execute(text("SELECT id, name FROM merchants ORDER BY id")).all())
        assert names == {1: "acme", 2: "acme-2", 3: "globex", 4: "acme-5", 5: "acme-5-2"}
        with engine.begin() as conn, pytest.raises(IntegrityError):
            conn.execute(text("UPDATE merchants SET name = 'acme' WHERE id = 3"))
    finally:
        engine.dispose()
