"""End to end: `storelink up`'s workers SIGKILLed in the middle of webhook POSTs; the supervisor replaces them,
the sweeper retries the attempts that were cut off once their lease runs out, and every event reaches the
platform exactly once after its deduplication on `webhook-id`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra import outbox, runtime
from connector.infra.models import Delivery, DeliveryAttempt, EventPayload
from connector.sandbox.platform import Fault, serve
from tests.helpers import ON_POSTGRESQL, Up, wait_for
from webhooks.outbound import fanout
from webhooks.outbound.endpoints import create_endpoint

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

EVENTS = 40
LATENCY = 0.1  # every POST takes this long at the platform...
HANG = 2.5  # ...except the one in flight when the workers are killed


def test_workers_killed_mid_post_every_event_arrives_exactly_once(
    settings: Settings, rt: runtime.Runtime, tmp_path: Path
) -> None:
    with serve() as platform:
        receiver = platform.receiver
        receiver.set_default(Fault(latency=LATENCY))
        # A few POSTs go through, then one hangs long enough for the workers to be killed in its middle.
        receiver.plan(*[Fault(latency=LATENCY)] * 5, Fault(latency=HANG))
        with rt.db.session() as session:
            created = create_endpoint(
                session, rt.secrets, url=platform.url, event_types=["*"], allow_private=True
            )
        receiver.add_secret(created.secret)
        up = Up(
            settings,
            tmp_path,
            WEBHOOK_ALLOW_PRIVATE_URLS="true",
            WEBHOOK_TIMEOUT_SECONDS="3",
            WEBHOOK_LEASE_MARGIN_SECONDS="1",
            WEBHOOK_SWEEP_GRACE_SECONDS="1",
        )
        try:
            up.wait_ready()
            fanout.install()
            with rt.db.session() as session:
                outbox.publish(
                    session, [outbox.DomainEvent("product.updated", None, {"n": i}) for i in range(EVENTS)]
                )
            with rt.db.session() as session:
                published = set(session.scalars(select(EventPayload.id)))
            assert len(published) == EVENTS

            cut_off = wait_for(
                lambda: [r for r in receiver.in_progress() if r.latency == HANG], 60, "a POST in flight"
            )
            victims = [w for w in up.workers() if w.status() != psutil.STATUS_ZOMBIE]
            for worker in victims:
                worker.send_signal(signal.SIGKILL)
            killed_at = time.time()
            assert isinstance(cut_off, list) and victims
            assert all(killed_at < r.started + r.latency for r in cut_off)  # still unanswered at the kill

            def all_succeeded() -> bool:
                with up.db.session() as session:
                    statuses = session.execute(
                        select(Delivery.status, func.count()).group_by(Delivery.status)
                    ).all()
                return dict(statuses) == {"succeeded": EVENTS}

            wait_for(all_succeeded, 90, "every delivery to succeed", interval=0.2)
            replacements = {w.pid for w in up.workers()}
            assert replacements and not replacements & {w.pid for w in victims}
        finally:
            up.stop()

        received = receiver.received()
        assert {r.webhook_id for r in received} == published  # every event, once after dedupe
        assert len(received) == EVENTS
        # The POSTs cut off were answered after their worker died, so the platform saw them again.
        assert receiver.duplicates >= 1
        with rt.db.session() as session:
            for entry in cut_off:
                delivery_id = session.scalar(
                    select(Delivery.id).where(Delivery.payload_id == entry.webhook_id)
                )
                attempts = session.scalar(
                    select(func.count()).where(DeliveryAttempt.delivery_id == delivery_id)
                )
                assert attempts == 1  # the killed attempt left no record; its retry is attempt 1
