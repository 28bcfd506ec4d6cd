"""Scheduled reconciliation of each installed merchant with its store, recorded as a sync run of kind
`reconcile` (visible with the merchant's other runs).

Every `RECONCILE_INTERVAL_SECONDS` the scheduler's `schedule_all` records one run per installed merchant (one
at a time per merchant); the run (`run_reconciliation`, on the sync queue):
- compares the tracked variants' stock with the store's and fixes the drift (`connector.stock.resync`; a
  catalog over `STOCK_SLICE` variants is compared a slice per run, in turn), raising `stock_drift` when
  consecutive runs find some and clearing it when a run finds none;
- looks up in the store the orders left `accepted` longer than `RECONCILE_ACCEPTED_AFTER_SECONDS`
  (`connector.orders.resync`: confirmed when found, pushed when not, never placed twice);
- checks that the store still sends its notifications to Storelink (`webhooks_missing`);
- expires the merchant's overdue holds and gives back released ones;
- counts the merchant's deliveries left pending past their time (platform webhooks and store webhooks not
  yet applied), which the sweepers send and drain again.
What each part found is kept in the run's `details`; the stock comparison's counts and differences are the
run's row counters and `diff`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from redis.exceptions import RedisError
from sqlalchemy import func, select

from connector.catalog import jobs, syncs
from connector.domain.errors import StorelinkError
from connector.domain.ports import Capability, StoreAdapter
from connector.infra import problems, runtime
from connector.infra.models import Delivery, EventPayload, InboundEvent, Merchant, SyncRun
from connector.merchants import subscriptions
from connector.orders import push
from connector.orders import resync as orders_resync
from connector.stock import reconcile as stock_reconcile
from connector.stock import resync as stock_resync

logger = logging.getLogger(__name__)

KIND = "reconcile"
STOCK_SLICE: Final = 5000
"""Variants whose stock one run compares: a larger catalog is compared over several runs, in turn."""
_STOCK_CURSOR: Final = "storelink:reconcile-stock-after:{}"
_CURSOR_TTL: Final = 30 * 86400


def schedule_all(rt: runtime.Runtime | None = None) -> list[int]:
    """Scheduler job: record (and queue) a reconciliation run for every installed merchant that has none under
    way; returns the run ids."""
    rt = rt or runtime.current()
    with rt.db.session() as session:
        ids = list(
            session.scalars(select(Merchant.id).where(Merchant.status == "installed").order_by(Merchant.id))
        )
    runs: list[int] = []
    for merchant_id in ids:
        try:
            runs.append(syncs.request_sync(rt, merchant_id, kind=KIND, full=False).id)
        except StorelinkError as exc:  # paused or removed meanwhile
            logger.info("reconciliation not scheduled", extra={"merchant_id": merchant_id, "code": exc.code})
    return runs


def _cursor(rt: runtime.Runtime, merchant_id: int) -> tuple[str, int]:
    key = _STOCK_CURSOR.format(merchant_id)
    try:
        return key, int(rt.redis.get(key) or 0)
    except (RedisError, ValueError):
        return key, 0


def _stock(rt: runtime.Runtime, run: SyncRun, token: str, merchant: Merchant, adapter: StoreAdapter) -> Any:
    """Compare the next slice of the catalog's stock (all of it when it is small) and fix the drift; a slice
    short of the limit ends the round, and the next run starts again from the first variant."""
    if Capability.INVENTORY_READ not in getattr(adapter, "capabilities", frozenset()):
        return None
    key, after = _cursor(rt, merchant.id)
    counts = stock_resync.compare_stock(rt, run, token, merchant, adapter, after=after, limit=STOCK_SLICE)
    try:
        rt.redis.set(key, str(counts.last_id if counts.compared == STOCK_SLICE else 0), ex=_CURSOR_TTL)
    except RedisError:
        logger.warning(
            "reconciliation cursor not kept; the next run starts over", extra={"merchant_id": merchant.id}
        )
    if counts.drift:
        problems.report(
            rt.db,
            problems.STOCK_DRIFT,
            merchant_id=merchant.id,
            detail=f"{counts.drift} of {counts.compared} variant(s) differed from the store (fixed)",
        )
    else:
        problems.resolve(rt.db, [problems.STOCK_DRIFT], merchant_id=merchant.id)
    return counts.as_dict()


def _orders(rt: runtime.Runtime, run: SyncRun, token: str, adapter: StoreAdapter) -> Any:
    if not orders_resync.takes_orders(adapter):
        return None
    before = datetime.now(UTC) - timedelta(seconds=rt.settings.reconcile_accepted_after_seconds)
    counts = orders_resync.look_up_orders(rt, run, token, adapter, before=before, report_rows=False)
    if counts.errors:
        syncs.record_progress(rt, run.id, token, row_errors=counts.errors, failed_rows=counts.failed)
    return counts.as_dict()


def _pending(rt: runtime.Runtime, merchant_id: int) -> dict[str, int]:
    """The merchant's deliveries overdue by more than the sweep grace: platform webhooks still pending, and
    store webhooks received but not applied."""
    cutoff = datetime.now(UTC) - timedelta(seconds=rt.settings.webhook_sweep_grace_seconds)
    with rt.db.session() as session:
        outbound = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(EventPayload, EventPayload.id == Delivery.payload_id)
            .where(
                EventPayload.merchant_id == merchant_id,
                Delivery.status == "pending",
                Delivery.next_attempt_at < cutoff,
            )
        )
        inbound = session.scalar(
            select(func.count())
            .select_from(InboundEvent)
            .where(
                InboundEvent.merchant_id == merchant_id,
                InboundEvent.status == "pending",
                InboundEvent.received_at < cutoff,
            )
        )
    return {"outbound_overdue": int(outbound or 0), "inbound_pending": int(inbound or 0)}


def _reconcile(rt: runtime.Runtime, run: SyncRun, token: str, merchant: Merchant) -> dict[str, Any]:
    adapter = push.adapter_for(rt, merchant)
    details: dict[str, Any] = {"stock": _stock(rt, run, token, merchant, adapter)}
    details["orders"] = _orders(rt, run, token, adapter)
    details["webhooks_missing"] = subscriptions.check_subscriptions(rt, merchant, adapter)
    now = datetime.now(UTC)
    details["holds"] = {
        "expired": stock_reconcile.expire_holds(
            rt, now, pushing_below=push.MAX_SWEPT_ATTEMPTS, merchant_id=merchant.id
        ),
        "given_back": stock_reconcile.give_back(rt, merchant.id),
    }
    details["deliveries"] = _pending(rt, merchant.id)
    if any(details["deliveries"].values()):
        logger.warning(
            "deliveries left pending; the sweepers send them again",
            extra={"merchant_id": merchant.id, **details["deliveries"]},
        )
    syncs.record_progress(rt, run.id, token, details=details)
    return details


def run_reconciliation(run_id: int) -> dict[str, Any] | None:
    """RQ job: one recorded reconciliation run (kind `reconcile`)."""
    return jobs.execute(run_id, _reconcile)
