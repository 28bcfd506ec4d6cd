"""The newest migrations on an existing database: down one step and up again keeps the schema equal to the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select

from connector.infra.db import make_engine
from connector.infra.migrate import alembic_config, current_revision, upgrade
from connector.infra.models import Base, Merchant

UNUSED_TABLES = {"affiliate_links", "clicks", "commissions", "showcases", "showcase_items"}


def _downgrade(engine, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


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

        upgrade(engine)

        assert current_revision(engine) != "0006"
        inspector = inspect(engine)
        assert not UNUSED_TABLES & set(inspector.get_table_names())
        assert "affiliate_link_id" not in {c["name"] for c in inspector.get_columns("order_lines")}
        with engine.connect() as conn:
            assert conn.scalar(select(Merchant.name)) == "kept"
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
