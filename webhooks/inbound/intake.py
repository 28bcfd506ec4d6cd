"""Intake: store one verified delivery exactly once, keyed by (source, the store's delivery id, merchant).

Delivery ids are unique within one store only: a Shopify shop, a Walmart seller or a feed store may send an
id another merchant's store already used, and that is a different delivery."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from connector.domain.ports import WebhookEnvelope
from connector.infra import bulk_insert
from connector.infra.db import Database
from connector.infra.models import InboundEvent

logger = logging.getLogger(__name__)

PENDING: Final = "pending"
DEDUPE_KEY: Final = ["source", "dedupe_key", "merchant_id"]
"""The columns of the unique key a delivery is stored once under."""
DROPPED_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Never stored: credentials some stores send with each delivery (Walmart's BASIC_AUTH, OAuth bearer)."""

_table: Table = InboundEvent.__table__  # type: ignore[assignment]


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in DROPPED_HEADERS}


_statements: dict[str, Any] = {}


def insert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (source, dedupe_key, merchant_id) DO NOTHING RETURNING id, built once per
    dialect."""
    stmt = _statements.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            base: Any = postgresql.insert(_table).on_conflict_do_nothing(index_elements=DEDUPE_KEY)
        elif dialect == "sqlite":
            base = sqlite.insert(_table).on_conflict_do_nothing(index_elements=DEDUPE_KEY)
        else:
            base = insert(_table)
        stmt = _statements[dialect] = base.returning(_table.c.id)
    return stmt


COLUMNS: Final = (
    "source",
    "dedupe_key",
    "merchant_id",
    "topic",
    "headers",
    "raw_body",
    "triggered_at",
    "received_at",
    "status",
    "error",
    "processed_at",
)


def row(
    *,
    source: str,
    merchant_id: int | None,
    envelope: WebhookEnvelope,
    headers: Mapping[str, str],
    raw_body: bytes,
) -> dict[str, Any]:
    return {
        "source": source,
        "dedupe_key": envelope.delivery_id,
        "merchant_id": merchant_id,
        "topic": envelope.topic,
        "headers": stored_headers(headers),
        "raw_body": raw_body,
        "triggered_at": envelope.triggered_at,
        "received_at": datetime.now(UTC),
        "status": PENDING,
        "error": None,
        "processed_at": None,
    }


_prepared: dict[str, bulk_insert.Prepared] = {}


def _prepared_insert(dialect: Any) -> bulk_insert.Prepared:
    prepared = _prepared.get(dialect.name)
    if prepared is None:
        statement = insert_statement(dialect.name)
        prepared = _prepared[dialect.name] = bulk_insert.prepare(dialect, _table, statement, COLUMNS)
    return prepared


def store(db: Database, **delivery: Any) -> int | None:
    """Insert the delivery as pending, committed before this returns (one statement, its own transaction);
    returns its id, or None when the same delivery is already stored. This is the web process's hottest
    write: the statement is compiled once and runs on the thread's own connection (`Database.fast_insert`)."""
    prepared = _prepared_insert(db.autocommit_engine.dialect)
    inserted = db.fast_insert(prepared.sql, prepared.params(row(**delivery)))
    return int(inserted) if inserted is not None else None


def store_in(conn: Connection, **delivery: Any) -> int | None:
    """The same insert inside the caller's transaction (bulk loads, tests)."""
    inserted = conn.execute(insert_statement(conn.dialect.name), row(**delivery)).scalar()
    return int(inserted) if inserted is not None else None
