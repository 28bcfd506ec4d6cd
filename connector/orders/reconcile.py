"""The periodic reconcile job (RQ, registered by `connector.scheduler`): ends pins whose countdown is over and
runs stock's reconcile of holds.

It is composed here, in orders, because it needs all three areas: live (`end_expired_pins`), stock
(`connector.stock.reconcile`: expire, give back, settle) and the order push, whose attempt limit says how long
an accepted order's holds outlive their expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.infra import runtime
from connector.live import sessions
from connector.orders import push
from connector.stock import reconcile as stock_reconcile

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    expired: int = 0
    given_back: int = 0
    settled: int = 0
    pins_ended: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "expired": self.expired,
            "given_back": self.given_back,
            "settled": self.settled,
            "pins_ended": self.pins_ended,
        }


def reconcile(rt: runtime.Runtime | None = None) -> dict[str, int]:
    """Periodic: expire overdue holds, give back holds released without their counter, settle confirmed holds
    the store level reflects, end pins whose countdown is over. Idempotent; safe to run concurrently."""
    rt = rt or runtime.current()
    now = datetime.now(UTC)
    report = ReconcileReport()
    report.expired = stock_reconcile.expire_holds(rt, now, pushing_below=push.MAX_SWEPT_ATTEMPTS)
    report.given_back = stock_reconcile.give_back(rt)
    report.settled = stock_reconcile.settle_confirmed(rt, now)
    report.pins_ended = sessions.end_expired_pins(rt, now)
    if any(report.as_dict().values()):
        logger.info("reservations reconciled", extra=report.as_dict())
    return report.as_dict()
