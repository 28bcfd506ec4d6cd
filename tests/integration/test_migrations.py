"""The newest migrations on an existing database: down one step and up again keeps the schema equal to the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select

from connector.infra import schema
from connector.infra.db import make_engine
from connector.infra.migrate import HEAD_REVISION, alembic_config, current_revision, upgrade
from connector.infra.models import Merchant

UNUSED_TABLES = {"affiliate_links", "clicks", "commissions", "showcases", "showcase_items"}
AFFILIATE_TABLES = {
    "affiliate_programs",
    "affiliate_program_rates",
    "affiliate_links",
    "affiliate_clicks",
    "affiliate_payouts",
    "commission_entries",
    "commission_transitions",
}


def _downgrade(engine, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_the_head_revision_is_the_newest_migration():
    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == HEAD_REVISION


def test_a_database_at_head_is_known_without_running_alembic_and_one_behind_is_upgraded(
    database_url: str, monkeypatch
):
    engine = make_engine(database_url)
    runs: list[str] = []
    monkeypatch.setattr(command, "upgrade", lambda _cfg, revision: runs.append(revision))
    try:
        upgrade(engine)  # the test's database is at head
        assert runs == []
        _downgrade(engine, "0012")
        upgrade(engine)
        assert runs == ["head"]
        monkeypatch.undo()
        upgrade(engine)
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_dropping_the_unused_tables_keeps_the_data_and_round_trips(database_url: str):
    engine = make_engine(database_url)
    try:
        _downgrade(engine, "0006")
        assert set(inspect(engine).get_table_names()) >= UNUSED_TABLES
        assert "affiliate_link_id" in {c["name"] for c in inspect(engine).get_columns("order_lines")}
        with engine.begin() as conn:
            conn.execute(
                insert(Merchant.__table__).values(
                    kind="feed", store_ref="feed:kept", name="kept", config={}, status="installed"
                )
            )

        upgrade(engine, "0007")

        inspector = inspect(engine)
        assert not UNUSED_TABLES & set(inspector.get_table_names())
        assert "affiliate_link_id" not in {c["name"] for c in inspector.get_columns("order_lines")}
        upgrade(engine)
        assert current_revision(engine) != "0007"
        with engine.connect() as conn:
            assert conn.scalar(select(Merchant.name)) == "kept"
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_the_affiliate_tables_come_and_go_with_their_migration_and_keep_the_orders(database_url: str):
    engine = make_engine(database_url)
    try:
        _downgrade(engine, "0007")
        assert not AFFILIATE_TABLES & set(inspect(engine).get_table_names())
        assert "attributed_via" not in {c["name"] for c in inspect(engine).get_columns("orders")}
        with engine.begin() as conn:
            conn.execute(
                insert(Merchant.__table__).values(
                    kind="feed", store_ref="feed:kept", name="kept", config={}, status="installed"
                )
            )

        upgrade(engine)

        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= AFFILIATE_TABLES
        assert "attributed_via" in {c["name"] for c in inspector.get_columns("orders")}
        with engine.connect() as conn:
            assert conn.scalar(select(Merchant.name)) == "kept"
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_the_showcase_tables_come_and_go_with_their_migration(database_url: str):
    engine = make_engine(database_url)
    try:
        _downgrade(engine, "0008")
        assert not {"showcases", "showcase_items"} & set(inspect(engine).get_table_names())

        upgrade(engine)

        assert set(inspect(engine).get_table_names()) >= {"showcases", "showcase_items"}
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()
