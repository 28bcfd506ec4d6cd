"""Benchmark `scale`, part three: the CPU cost of one outbound delivery as endpoints grow.

The same number of deliveries is made twice: events fanned out to one endpoint, then a hundredth as many
events fanned out to a hundred endpoints. Publishing (with its fan-out) and delivering both run in the bench
process (an in-process burst worker, which runs jobs without forking), so the process's CPU time over the
run, divided by the deliveries that succeeded, is the figure. The platform's receiver runs in a process of
its own, as the platform is another service, so checking the signatures is not counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select, update

from connector.bench.platform_receivers import fanout_receiver
from connector.bench.processes import piped_process
from connector.domain.event_types import INVENTORY_UPDATED

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 10


@contextmanager
def _receiver() -> Iterator[tuple[Any, str]]:
    with piped_process(fanout_receiver, "the platform receiver") as parent:
        try:
            yield parent, parent.recv()
        finally:
            parent.send(None)


def _disable_endpoints(rt: Any) -> None:
    from connector.infra.models import WebhookEndpoint

    with rt.db.session() as session:
        session.execute(update(WebhookEndpoint).values(enabled=False))


def _endpoints(rt: Any, pipe: Any, url: str, count: int) -> list[int]:
    """Disable every endpoint there is and create `count` enabled ones for inventory events at `url`."""
    from webhooks.outbound import endpoints

    _disable_endpoints(rt)
    with rt.db.session() as session:
        created = [
            endpoints.create_endpoint(
                session, rt.secrets, url=url, event_types=[INVENTORY_UPDATED], allow_private=True
            )
            for _ in range(count)
        ]
        ids = [c.endpoint.id for c in created]
        secrets = [c.secret for c in created]
    pipe.send(secrets)
    pipe.recv()
    return ids


def _publish(rt: Any, merchant_id: int, events: int) -> None:
    from connector.infra import outbox

    for start in range(0, events, PUBLISH_BATCH):
        batch = [
            outbox.DomainEvent(
                INVENTORY_UPDATED,
                merchant_id,
                {"external_id": f"SKU-{n:06d}", "available": n, "sellable": n, "previous_sellable": None},
            )
            for n in range(start, min(events, start + PUBLISH_BATCH))
        ]
        with rt.db.session() as session:
            outbox.publish(session, batch)


def _outcomes(rt: Any, endpoint_ids: list[int]) -> dict[str, int]:
    from connector.infra.models import Delivery

    with rt.db.session() as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.endpoint_id.in_(endpoint_ids))
            .group_by(Delivery.status)
        )
        return {status: n for status, n in rows}


def fanout_run(
    rt: Any, pipe: Any, url: str, merchant_id: int, endpoints: int, deliveries: int
) -> dict[str, Any]:
    """Publish deliveries / endpoints events to `endpoints` endpoints and deliver them all, in-process."""
    from connector.worker import build_worker

    ids = _endpoints(rt, pipe, url, endpoints)
    events = max(1, deliveries // endpoints)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    _publish(rt, merchant_id, events)
    deadline = time.monotonic() + 600
    while (outcomes := _outcomes(rt, ids)).get("pending", 0) and time.monotonic() < deadline:
        build_worker(rt).work(burst=True, with_scheduler=False, logging_level="WARNING")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    delivered = outcomes.get("succeeded", 0)
    return {
        "endpoints": endpoints,
        "events": events,
        "deliveries": sum(outcomes.values()),
        "delivered": delivered,
        "outcomes": outcomes,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cpu_ms_per_delivery": cpu / max(1, delivered) * 1000,
    }


def fanout(
    rt: Any, merchant_id: int, *, endpoints: int, deliveries: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """The same deliveries to one endpoint, then to `endpoints`; per-delivery CPU ratio."""
    from connector.showcases import events as showcase_events
    from connector.worker import wire_outbound
    from webhooks.outbound import delivery
    from webhooks.outbound import fanout as outbound_fanout

    wire_outbound(rt.settings)
    try:
        with _receiver() as (pipe, url):
            say(f"outbound fan-out: {deliveries:,} deliveries to 1 endpoint…")
            one = fanout_run(rt, pipe, url, merchant_id, 1, deliveries)
            say(f"outbound fan-out: {deliveries:,} deliveries to {endpoints} endpoints…")
            many = fanout_run(rt, pipe, url, merchant_id, endpoints, deliveries)
            pipe.send([])
            pipe.recv()
    finally:
        _disable_endpoints(rt)  # the endpoints' receiver is gone; later events must not reach them
        outbound_fanout.uninstall()
        showcase_events.uninstall()
        delivery.configure()
    ratio = many["cpu_ms_per_delivery"] / one["cpu_ms_per_delivery"] if one["cpu_ms_per_delivery"] else 0.0
    return {"one": one, "many": many, "ratio": ratio}
