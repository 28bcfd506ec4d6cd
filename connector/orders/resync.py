"""Orders left `accepted`: each looked up in the store, confirmed when it is there, pushed when it is not, and
never placed twice.

The orders resync (`run_orders_resync`, a sync run of kind `orders`, for the orders placed since the run's
`since`) and the scheduled reconciliation (`connector.orders.reconciliation`, for orders accepted longer ago
than its threshold) both call `look_up_orders`. Each order is looked up under its push lease
(`connector.orders.push.claim_attempt`: one attempt at a time, and the attempt recorded before the store is
asked), so no push runs while it is looked up, and the push queued for an order the store does not have
looks it up again before creating it. An order whose push is under way is left to it. A dry run only looks:
it records what it would do (`diff`, ops `confirm` and `push`) and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select

from connector.catalog import jobs, syncs
from connector.domain.errors import AuthError, PermanentError, StorelinkError
from connector.domain.orders import ExternalOrderRef, OrderStatus
from connector.domain.ports import Capability, StoreAdapter
from connector.infra import queue, runtime
from connector.infra.models import Merchant, Order, SyncRun
from connector.orders import push
from connector.stock import store_orders

logger = logging.getLogger(__name__)

MAX_RECORDED: Final = 1000
PROGRESS_EVERY: Final = 20
"""Orders looked up between two progress records."""


@dataclass
class OrderCounts:
    """What one pass found: orders looked at, found in the store (confirmed), not found (pushed), left to a
    push under way, and those whose lookup failed."""

    examined: int = 0
    found: int = 0
    pushed: int = 0
    in_flight: int = 0
    failed: int = 0
    diff: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "examined": self.examined,
            "found_in_store": self.found,
            "pushed": self.pushed,
            "push_under_way": self.in_flight,
            "lookup_failed": self.failed,
        }


def takes_orders(adapter: StoreAdapter) -> bool:
    """Whether the store takes platform orders (rather than none, or sales as stock reductions)."""
    capabilities: frozenset[Capability] = getattr(adapter, "capabilities", frozenset())
    return Capability.ORDER_PUSH in capabilities and not store_orders.sells_by_stock(adapter)


def _candidates(
    rt: runtime.Runtime, merchant_id: int, since: datetime | None, before: datetime | None
) -> list[tuple[int, str]]:
    query = select(Order.id, Order.public_id).where(
        Order.merchant_id == merchant_id, Order.status == OrderStatus.ACCEPTED.value
    )
    if since is not None:
        query = query.where(Order.created_at >= since)
    if before is not None:
        query = query.where(Order.created_at < before)
    with rt.db.session() as session:
        return [(oid, public) for oid, public in session.execute(query.order_by(Order.id))]


def _in_flight(rt: runtime.Runtime, order_id: int) -> bool:
    """A push attempt holds the order's lease (and it is not stale)."""
    stale = datetime.now(UTC) - timedelta(seconds=queue.lease_seconds(rt.settings))
    with rt.db.session() as session:
        started = session.scalar(select(Order.push_started_at).where(Order.id == order_id))
    return started is not None and started >= stale


def _note(counts: OrderCounts, entry: dict[str, Any]) -> None:
    if len(counts.diff) < MAX_RECORDED:
        counts.diff.append(entry)


def _dry(rt: runtime.Runtime, adapter: StoreAdapter, order_id: int, public: str, counts: OrderCounts) -> None:
    if _in_flight(rt, order_id):
        counts.in_flight += 1
        return
    ref = adapter.find_order(push.push_key(public))
    if ref is not None:
        counts.found += 1
        _note(counts, _confirm_entry(public, ref))
    else:
        counts.pushed += 1
        _note(counts, {"op": "push", "order": public, "changes": {"store_order": [None, "pushed"]}})


def _confirm_entry(public: str, ref: ExternalOrderRef) -> dict[str, Any]:
    return {
        "op": "confirm",
        "order": public,
        "changes": {"status": ["accepted", "confirmed"], "store_order": [None, ref.name or ref.external_id]},
    }


def _apply(
    rt: runtime.Runtime, adapter: StoreAdapter, order_id: int, public: str, counts: OrderCounts
) -> None:
    claimed = push.claim_attempt(rt, order_id)
    if claimed is None:
        counts.in_flight += 1  # a push holds it, or it is no longer accepted
        return
    attempt = claimed[0]
    try:
        ref = adapter.find_order(push.push_key(public))
    except BaseException:
        push.release_attempt(rt, order_id, attempt)
        raise
    if ref is not None:
        counts.found += 1
        push.confirm_order(rt, order_id, ref, attempt)
        _note(counts, _confirm_entry(public, ref))
        logger.info("accepted order found in the store; confirmed", extra={"order_id": order_id})
        return
    push.release_attempt(rt, order_id, attempt)
    push.enqueue(rt, order_id)  # its attempt is recorded: the push looks the order up again first
    counts.pushed += 1
    _note(counts, {"op": "push", "order": public, "changes": {"store_order": [None, "pushed"]}})


def look_up_orders(
    rt: runtime.Runtime,
    run: SyncRun,
    token: str,
    adapter: StoreAdapter,
    *,
    since: datetime | None = None,
    before: datetime | None = None,
    report_rows: bool = True,
) -> OrderCounts:
    """Look up the merchant's accepted orders placed in [`since`, `before`) and settle each (see the module
    docstring); with `report_rows`, `run`'s counters, total and diff follow along. Credentials refused end
    the pass (AuthError); any other failed lookup is recorded and the pass goes on."""
    orders = _candidates(rt, run.merchant_id, since, before)
    counts = OrderCounts()
    if report_rows:
        syncs.record_progress(rt, run.id, token, total=len(orders))
    for n, (order_id, public) in enumerate(orders, start=1):
        counts.examined += 1
        try:
            (_dry if run.dry_run else _apply)(rt, adapter, order_id, public, counts)
        except AuthError:
            raise
        except StorelinkError as exc:
            counts.failed += 1
            if len(counts.errors) < MAX_RECORDED:
                counts.errors.append({"line": n, "error": f"order {public}: {exc.code}: {exc.message}"})
        if report_rows and (n % PROGRESS_EVERY == 0 or n == len(orders)):
            _progress(rt, run, token, counts)
    logger.info(
        "accepted orders looked up",
        extra={"merchant_id": run.merchant_id, "run_id": run.id, "dry_run": run.dry_run, **counts.as_dict()},
    )
    return counts


def _progress(rt: runtime.Runtime, run: SyncRun, token: str, counts: OrderCounts) -> None:
    syncs.record_progress(
        rt,
        run.id,
        token,
        rows_read=counts.examined,
        updated=counts.found,
        created=counts.pushed,
        unchanged=counts.in_flight,
        failed_rows=counts.failed,
        row_errors=counts.errors,
        diff=counts.diff,
        details=counts.as_dict(),
    )


def _orders(rt: runtime.Runtime, run: SyncRun, token: str, merchant: Merchant) -> dict[str, Any]:
    adapter = push.adapter_for(rt, merchant)
    if not takes_orders(adapter):
        raise PermanentError(
            f"merchant {merchant.name}: its store takes no orders", code="store_takes_no_orders"
        )
    return look_up_orders(rt, run, token, adapter, since=run.since).as_dict()


def run_orders_resync(run_id: int) -> dict[str, Any] | None:
    """RQ job: one recorded orders resync (kind `orders`)."""
    return jobs.execute(run_id, _orders)
