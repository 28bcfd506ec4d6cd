"""Intake: store one verified delivery exactly once, keyed by (source, the store's delivery id)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from connector.models import InboundEvent
from connector.ports import WebhookEnvelope

logger = logging.getLogger(__name__)

PENDING: Final = "pending"
DROPPED_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Never stored: credentials some stores send with each delivery (Walmart's BASIC_AUTH, OAuth bearer)."""

_table: Table = InboundEvent.__table__  # type: ignore[assignment]


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in DROPPED_HEADERS}


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(_table).on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
    if dialect == "sqlite":
        return sqlite.insert(_table).on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
    return insert(_table)


def store(
    conn: Connection,
    *,
    source: str,
    merchant_id: int | None,
    envelope: WebhookEnvelope,
    headers: Mapping[str, str],
    raw_body: bytes,
) -> int | None:
    """Insert the delivery as pending; returns its id, or None when the same delivery is already stored."""
    row = {
        "source": source,
        "dedupe_key": envelope.delivery_id,
        "merchant_id": merchant_id,
        "topic": envelope.topic,
        "headers": stored_headers(headers),
        "raw_body": raw_body,
        "triggered_at": envelope.triggered_at,
        "received_at": datetime.now(UTC),
        "status": PENDING,
    }
    stmt = _insert(conn.dialect.name).values(**row).returning(_table.c.id)
    inserted = conn.execute(stmt).scalar()
    return int(inserted) if inserted is not None else None
