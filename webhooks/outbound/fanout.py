"""Fan-out: one Delivery per (event, subscribed enabled endpoint), written in the publishing transaction.

`on_events` is a `connector.infra.outbox.Subscriber`. The deliveries exist if and only if the events do; their jobs
are enqueued after the commit (never before, so a job never looks for a row that is not there yet), each on
its endpoint's queue (the slow queue for a slow endpoint, see `isolation`; else the queue given to
`install`). A crash between commit and enqueue loses nothing: the deliveries stay pending and the sweeper
enqueues them.

Scoping: an endpoint with a `platform_client_id` receives only events of merchants linked to that client
(and events without a merchant); an endpoint without one receives every subscribed event. The lookup reads
only the endpoints an event may reach (unscoped ones and those of the events' merchants' clients, by the
`ix_webhook_endpoints_client_enabled` index) and only the columns matching needs, so its cost does not grow
with other clients' endpoints; only a batch holding an event without a merchant reads every enabled endpoint.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session

from connector.infra import bulk_insert, outbox
from connector.infra.models import Delivery, Merchant, WebhookEndpoint
from webhooks.outbound import scheduling
from webhooks.outbound.endpoints import matches

logger = logging.getLogger(__name__)

_queue_name = scheduling.DEFAULT_QUEUE


_CLIENTS: Final = select(Merchant.id, Merchant.platform_client_id).where(
    Merchant.id.in_(bindparam("merchant_ids", expanding=True))
)
_ENABLED: Final = select(
    WebhookEndpoint.id, WebhookEndpoint.platform_client_id, WebhookEndpoint.event_types
).where(WebhookEndpoint.enabled.is_(True))
_UNSCOPED: Final = _ENABLED.where(WebhookEndpoint.platform_client_id.is_(None))
_SCOPED: Final = _ENABLED.where(
    or_(
        WebhookEndpoint.platform_client_id.is_(None),
        WebhookEndpoint.platform_client_id.in_(bindparam("client_ids", expanding=True)),
    )
)
"""The lookups of `_reachable`, built once (their ids bound at execution)."""


def _reachable(session: Session, rows: Sequence[dict[str, Any]]) -> tuple[list[Any], dict[int, int | None]]:
    """The enabled endpoints `rows` may reach (id, client, event types), and each merchant's client."""
    merchant_ids = {r["merchant_id"] for r in rows if r.get("merchant_id") is not None}
    client_of: dict[int, int | None] = {}
    if merchant_ids:
        client_of = {
            merchant_id: client_id
            for merchant_id, client_id in session.execute(_CLIENTS, {"merchant_ids": sorted(merchant_ids)})
        }
    if not all(
        r.get("merchant_id") is not None for r in rows
    ):  # an event without a merchant reaches every client
        return list(session.execute(_ENABLED)), client_of
    client_ids = sorted({client_id for client_id in client_of.values() if client_id is not None})
    if client_ids:
        return list(session.execute(_SCOPED, {"client_ids": client_ids})), client_of
    return list(session.execute(_UNSCOPED)), client_of


@functools.cache
def _stored_pairs(dialect: str) -> Select[str, int]:
    """The deliveries already stored for some payload ids (bound at execution), built once per dialect."""
    return select(Delivery.payload_id, Delivery.endpoint_id).where(
        bulk_insert.in_param(dialect, Delivery.payload_id, "payload_ids")
    )


@functools.cache
def _stored_ids(dialect: str) -> Select[int, str, int]:
    """The deliveries of some payload ids (bound at execution) with their ids, built once per dialect."""
    return (
        select(Delivery.id, Delivery.payload_id, Delivery.endpoint_id)
        .where(bulk_insert.in_param(dialect, Delivery.payload_id, "payload_ids"))
        .order_by(Delivery.id)
    )


def plan(session: Session, rows: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """(payload id, endpoint id) pairs that should exist for `rows`, excluding those already stored."""
    if not rows:
        return []
    endpoints, client_of = _reachable(session, rows)
    if not endpoints:
        return []
    pairs: list[tuple[str, int]] = []
    for row in rows:
        merchant_id = row.get("merchant_id")
        for endpoint in endpoints:
            if not matches(endpoint.event_types, row["type"]):
                continue
            if (
                endpoint.platform_client_id is not None
                and merchant_id is not None
                and client_of.get(merchant_id) != endpoint.platform_client_id
            ):
                continue
            pairs.append((row["id"], endpoint.id))
    if not pairs:
        return []
    dialect = session.get_bind().dialect.name
    payload_ids = bulk_insert.param_values(dialect, list({p for p, _ in pairs}))
    existing = set(session.execute(_stored_pairs(dialect), {"payload_ids": payload_ids}))
    return [pair for pair in pairs if pair not in existing]


def on_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Subscriber: store the deliveries for `rows` and enqueue their first attempt after commit."""
    pairs = plan(session, rows)
    if not pairs:
        return
    now = datetime.now(UTC)
    bulk_insert.insert_many(
        session.connection(),
        Delivery.__table__,  # type: ignore[arg-type]
        [
            {
                "payload_id": payload_id,
                "endpoint_id": endpoint_id,
                "status": "pending",
                "attempt_count": 0,
                "next_attempt_at": now,
                "last_status_code": None,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
            for payload_id, endpoint_id in pairs
        ],
    )
    dialect = session.get_bind().dialect.name
    payload_ids = bulk_insert.param_values(dialect, list({p for p, _ in pairs}))
    wanted = set(pairs)
    due = [
        scheduling.Due(delivery_id, 1, endpoint_id)
        for delivery_id, payload_id, endpoint_id in session.execute(
            _stored_ids(dialect), {"payload_ids": payload_ids}
        )
        if (payload_id, endpoint_id) in wanted
    ]
    scheduling.enqueue_after_commit(session, due, queue=_queue_name)
    logger.debug("deliveries created", extra={"events": len(rows), "deliveries": len(due)})


def install(queue: str = scheduling.DEFAULT_QUEUE) -> None:
    """Subscribe `on_events` to published domain events; delivery jobs go to `queue`."""
    global _queue_name
    _queue_name = queue
    outbox.subscribe(on_events)


def uninstall() -> None:
    outbox.unsubscribe(on_events)
