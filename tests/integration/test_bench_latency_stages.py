"""The `webhooks` bench's breakdown of store-to-platform time, read from the rows the pipeline wrote."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.bench.latency_stages import stage_latencies
from connector.infra import runtime
from connector.infra.models import Delivery, EventPayload, InboundEvent, WebhookEndpoint

T0 = 1_800_000_000.0  # when the first webhook was sent (epoch seconds)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_each_stage_is_the_time_between_the_rows_written_for_a_webhook(rt: runtime.Runtime):
    # Webhook n carries quantity 200000 + n; it is stored 10 ms after it is sent, applied (its delivery row
    # written) 100 * (n + 1) ms later and arrives at the platform 50 ms after that.
    sent, by_quantity, arrived = {}, {}, {}
    with rt.db.session() as session:
        endpoint = WebhookEndpoint(public_id="we_1", url="http://127.0.0.1:1/", secret_encrypted=b"x")
        session.add(endpoint)
        session.flush()
        for n in range(4):
            quantity, webhook_id, t0 = 200_000 + n, f"msg_{n}", T0 + n
            body = f'{{"type": "inventory.updated", "data": {{"items": [{{"id": "v1", "quantity": {quantity}}}]}}}}'
            session.add(
                InboundEvent(
                    source="feed",
                    dedupe_key=f"d{n}",
                    topic="inventory.updated",
                    raw_body=body.encode(),
                    received_at=_at(t0 + 0.010),
                    status="processed",
                    processed_at=_at(t0 + 0.010 + 0.1 * (n + 1)),
                )
            )
            session.add(EventPayload(id=webhook_id, type="inventory.updated", data={"available": quantity}))
            session.flush()
            session.add(
                Delivery(
                    payload_id=webhook_id, endpoint_id=endpoint.id, created_at=_at(t0 + 0.010 + 0.1 * (n + 1))
                )
            )
            sent[quantity], by_quantity[quantity] = t0, webhook_id
            arrived[webhook_id] = t0 + 0.010 + 0.1 * (n + 1) + 0.050
        sent[300_000] = T0 + 9  # accepted but never arrived: not counted

    stages = stage_latencies(rt, sent, by_quantity, arrived, measured_from=T0 + 1)  # the first is warm-up

    assert stages["accept"]["p50_ms"] == pytest.approx(10, abs=1)
    assert stages["drain"]["p50_ms"] == pytest.approx(300, abs=1)  # webhooks 1..3: 200, 300, 400 ms
    assert stages["drain"]["p99_ms"] == pytest.approx(400, abs=1)
    assert stages["dispatch"]["p99_ms"] == pytest.approx(50, abs=1)
