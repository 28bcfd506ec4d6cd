"""End to end: what `storelink up` logs at INFO. Idle, with the sweeps running every second, it prints next to
nothing (RQ's per-job lines and per-delivery lines are DEBUG); a delivery that fails still shows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra import outbox, runtime
from connector.infra.models import Delivery
from connector.sandbox.platform import serve
from tests.helpers import SQLITE_ONLY, Up, wait_for
from webhooks.outbound import fanout
from webhooks.outbound.endpoints import create_endpoint

pytestmark = [pytest.mark.slow, SQLITE_ONLY]

QUIET_FOR = 6.0  # seconds of idle: six rounds of the seven sweeps, about 170 lines at INFO before


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_idle_up_is_quiet_and_a_failed_delivery_still_shows(
    settings: Settings, rt: runtime.Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    with serve() as platform:
        with rt.db.session() as session:
            created = create_endpoint(
                session, rt.secrets, url=platform.url, event_types=["*"], allow_private=True
            )
        platform.receiver.add_secret(created.secret)
        up = Up(settings, tmp_path, WEBHOOK_ALLOW_PRIVATE_URLS="true")
        try:
            up.wait_ready()
            time.sleep(3)  # start-up lines
            before = len(_lines(log))
            time.sleep(QUIET_FOR)
            idle = _lines(log)[before:]
            assert len(idle) <= 2, "\n".join(idle)

            fanout.install()
            platform.receiver.plan(500)  # the first POST fails, the others succeed
            with rt.db.session() as session:
                outbox.publish(
                    session, [outbox.DomainEvent("product.updated", None, {"n": i}) for i in range(5)]
                )

            def delivered() -> bool:
                with rt.db.session() as session:
                    counts = dict(
                        session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
                    )
                return counts == {"succeeded": 5}

            wait_for(delivered, 60, "the five deliveries", interval=0.2)
            attempts = [line for line in _lines(log)[before:] if "delivery attempt" in line]
            assert (
                len(attempts) == 1 and '"outcome": "retry"' in attempts[0]
            )  # the failure, not the successes
        finally:
            up.stop()
