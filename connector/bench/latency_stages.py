"""Where a store webhook's time to the platform goes, stage by stage, read from the rows the pipeline wrote.

For each webhook the `webhooks` bench timed end to end (by the unique quantity it carried): sent → stored by
the receiver (`inbound_events.received_at`) → applied by a drain job, whose transaction also writes the event
and its delivery row for the endpoint (`deliveries.created_at`) → sent by a dispatcher job and arrived at the
platform receiver. Every clock is this machine's, so the stages add up to the total.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import select

from connector.bench.load import percentile
from connector.infra.models import Delivery, InboundEvent

STAGES = (
    ("accept", "sent -> stored by the receiver"),
    ("drain", "stored -> applied, event and delivery row written (drain job)"),
    ("dispatch", "delivery row -> arrived at the platform (dispatcher job)"),
)
_QUANTITY = re.compile(rb'"quantity":\s*(\d+)')


def stage_latencies(
    rt: Any,
    sent: dict[int, float],
    by_quantity: dict[int, str],
    arrived: dict[str, float],
    *,
    measured_from: float,
) -> dict[str, dict[str, float]]:
    """p50 and p99 in ms of each stage, over the webhooks sent after `measured_from` that arrived."""
    timed = {q: t0 for q, t0 in sent.items() if t0 >= measured_from and by_quantity.get(q) in arrived}
    stored = _stored_times(rt, set(timed))
    fanned_out = _delivery_rows(rt, {by_quantity[q] for q in timed})
    samples: dict[str, list[float]] = defaultdict(list)
    for quantity, t0 in timed.items():
        webhook_id = by_quantity[quantity]
        if quantity not in stored or webhook_id not in fanned_out:
            continue
        points = (t0, stored[quantity], fanned_out[webhook_id], arrived[webhook_id])
        for (name, _), start, end in zip(STAGES, points, points[1:], strict=False):
            samples[name].append((end - start) * 1000)
    return {
        name: {
            "p50_ms": round(percentile(samples[name], 50), 1),
            "p99_ms": round(percentile(samples[name], 99), 1),
        }
        for name, _ in STAGES
    }


def _stored_times(rt: Any, quantities: set[int]) -> dict[int, float]:
    """When (epoch seconds) the receiver stored each delivery carrying one of `quantities`."""
    times: dict[int, float] = {}
    with rt.db.session() as session:
        rows = session.execute(select(InboundEvent.raw_body, InboundEvent.received_at))
        for raw, received in rows:
            match = _QUANTITY.search(bytes(raw))
            if match and int(match[1]) in quantities:
                times[int(match[1])] = received.timestamp()
    return times


def _delivery_rows(rt: Any, webhook_ids: set[str]) -> dict[str, float]:
    """When (epoch seconds) each event in `webhook_ids` got its delivery row."""
    with rt.db.session() as session:
        rows = session.execute(select(Delivery.payload_id, Delivery.created_at))
        return {payload_id: created.timestamp() for payload_id, created in rows if payload_id in webhook_ids}
