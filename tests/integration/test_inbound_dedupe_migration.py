"""The migration to per-merchant delivery deduplication, on a database that already holds deliveries."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert, select, text

from connector.infra.db import make_engine
from connector.infra.migrate import alembic_config, current_revision, upgrade
from connector.infra.models import InboundEvent, Merchant

BEFORE = "0003"


def _downgrade(engine, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _event(merchant_id: int, key: str) -> dict[str, object]:
    return {
        "source": "feed",
        "dedupe_key": key,
        "merchant_id": merchant_id,
        "topic": "inventory.updated",
        "headers": {},
        "raw_body": b"{}",
        "received_at": datetime.now(UTC),
        "status": "processed",
    }


def test_upgrading_keeps_deliveries_and_then_dedupes_per_merchant(database_url: str):
    engine = make_engine(database_url)
    try:
        _downgrade(engine, BEFORE)
        with engine.begin() as conn:
            ids = [
                conn.execute(
                    insert(Merchant.__table__).values(
                        kind="feed", store_ref=f"feed:{name}", name=name, config={}, status="installed"
                    )
                ).inserted_primary_key[0]
                for name in ("alpha", "beta")
            ]
            conn.execute(insert(InboundEvent.__table__), [_event(ids[0], "msg_1"), _event(ids[1], "msg_2")])

        upgrade(engine)

        assert current_revision(engine) != BEFORE
        with engine.begin() as conn:
            conn.execute(
                insert(InboundEvent.__table__), [_event(ids[1], "msg_1")]
            )  # the same id, another store
            rows = conn.execute(
                select(InboundEvent.merchant_id, InboundEvent.dedupe_key).order_by(InboundEvent.id)
            ).all()
        assert [tuple(r) for r in rows] == [(ids[0], "msg_1"), (ids[1], "msg_2"), (ids[1], "msg_1")]
        with engine.connect() as conn:
            repeat = conn.execute(
                text(
                    "INSERT INTO inbound_events (source, dedupe_key, merchant_id, topic, headers, raw_body,"
                    " received_at, status) SELECT source, dedupe_key, merchant_id, topic, headers, raw_body,"
                    " received_at, status FROM inbound_events WHERE dedupe_key = 'msg_2'"
                    " ON CONFLICT (source, dedupe_key, merchant_id) DO NOTHING"
                )
            )
            assert repeat.rowcount == 0  # the same store's delivery again is still one row

        # Going back keeps the oldest delivery of each (source, id) and restores the narrower key.
        _downgrade(engine, BEFORE)
        with engine.connect() as conn:
            kept = conn.execute(
                select(InboundEvent.merchant_id, InboundEvent.dedupe_key).order_by(InboundEvent.id)
            ).all()
        assert [tuple(r) for r in kept] == [(ids[0], "msg_1"), (ids[1], "msg_2")]
        upgrade(engine)
    finally:
        engine.dispose()
