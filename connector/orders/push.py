"""Order push: the job that places an accepted platform order in its merchant's store exactly once.

Some stores take an order without an idempotency key, so the job records its intent on the order
row (`push_attempts`, `push_started_at`) and commits it before calling the store; every attempt after the
first looks the order up by its deterministic key (`find_order`) before creating anything. `push_started_at`
is also the lease of the attempt in flight: it is cleared when the attempt ends, and one older than
the lease (`connector.infra.queue.lease_seconds`) belongs to a worker presumed dead, which `sweep` replaces.

A store that cannot take orders but whose stock Storelink writes (its adapter is `ReducesStockForSale`, and
its merchant's capabilities leave out order push) gets the sale as a stock reduction instead
(`connector.stock.store_orders.take_off_store_stock`, exactly once per order), and the order is confirmed with no store order ref.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from connector.catalog import syncs
from connector.domain.errors import AuthError, PermanentError, RetryableError, StorelinkError
from connector.domain.event_types import ORDER_CONFIRMED as ORDER_CONFIRMED
from connector.domain.event_types import ORDER_REJECTED as ORDER_REJECTED
from connector.domain.money import Money
from connector.domain.orders import Address, Attribution, ExternalOrderRef, OrderStatus
from connector.domain.orders import Order as PushOrder
from connector.domain.orders import OrderLine as PushLine
from connector.domain.ports import ReducesStockForSale, StoreAdapter
from connector.infra import outbox, problems, queue, runtime
from connector.infra.models import AffiliateLink, Merchant, Order, OrderLine, Variant
from connector.infra.queue import LIVE_STATUSES, ORDERS, jittered_retry
from connector.infra.store_adapters import build_adapter
from connector.stock import holds, store_orders

logger = logging.getLogger(__name__)

JOB_FUNC: Final = "connector.orders.push.push_order"
QUEUE_PUSHES_FUNC: Final = "connector.orders.push.queue_pushes"
SWEEP_GRACE: Final = timedelta(seconds=5)
"""An accepted order younger than this is left to the enqueue that follows its commit."""
MAX_SWEPT_ATTEMPTS: Final = 25
"""The sweeper stops re-enqueueing an order after this many attempts; it stays `accepted` for support."""
OVERDUE_RETRY: Final = timedelta(seconds=5)
"""A push retry this late was not moved to its queue (the worker holding RQ's scheduler lock died): the
sweeper moves it."""
PUSH_RETRY_BASE: Final = (2, 2, 4, 8, 15, 30, 60, 300, 1800, 3600)
"""Retry delays of a push (seconds): a buyer waits on it, and a repeat costs one lookup."""
_STORE_DID_NOTHING: Final = frozenset({"throttled", "rate_limited", "connect"})
"""Failures that prove the store did not act on the request; any other may have created the order."""
_ADAPTER_CACHE_SIZE: Final = 32
_WAITING: Final = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
_TAKEN_OVER: Final = "storelink:order-push-taken-over:{}:{}"
"""Set when the sweeper takes over one stale attempt (order id, the attempt's start), for a lease."""
PUSH_SUCCESS: Final = (
    problems.PUSH_FAILING,
    problems.THROTTLED,
    problems.STORE_UNREACHABLE,
    problems.CREDENTIALS_REFUSED,
)
"""Problems an order the store took proves gone."""


def job_id(order_id: int) -> str:
    return f"order-push-{order_id}"


def push_key(public_id: str) -> str:
    """The store-side idempotency key of an order: derived from Storelink's order id only."""
    return f"storelink-{public_id}"


# --- enqueueing --------------------------------------------------------------------------------------------


def push_retry() -> Retry:
    return jittered_retry(PUSH_RETRY_BASE)


def _enqueue(rt: runtime.Runtime, order_id: int, *, takeover: bool = False) -> Job | None:
    """Queue the push of one order unless a job of it is live (a takeover is queued anyway, at the front)."""
    return rt.queues.enqueue(
        ORDERS,
        JOB_FUNC,
        order_id,
        job_id=job_id(order_id),
        retry=push_retry(),
        timeout=queue.attempt_timeout(rt.settings),
        dedupe=not takeover,
        at_front=takeover,  # it has waited its turn once: a backlog of new pushes does not hold it back
    )


def enqueue(rt: runtime.Runtime, order_id: int, *, takeover: bool = False) -> bool:
    """Queue the push of one order (best effort: a failure here only delays it until the sweeper); a
    takeover goes to the front of the queue. Orders just committed go through `enqueue_new`."""
    try:
        job = _enqueue(rt, order_id, takeover=takeover)
    except Exception:
        logger.exception("order push enqueue failed; the sweeper will retry", extra={"order_id": order_id})
        return False
    return job is not None


def enqueue_new(rt: runtime.Runtime, order_ids: Sequence[int]) -> bool:
    """Queue the pushes of orders just committed (no job of theirs can be live), in one Redis round trip;
    best effort as `enqueue`. One order's push is queued itself; a transaction's several (a group commit's
    purchases) are queued by one job of `queue_pushes`, so that the request path writes one job, not one
    per order, and a worker writes the rest."""
    calls: list[tuple[str, tuple[Any, ...], Retry]]
    if len(order_ids) == 1:
        func, calls = JOB_FUNC, [(job_id(order_ids[0]), (order_ids[0],), push_retry())]
    else:
        batch_id = f"order-pushes-{order_ids[0]}-{len(order_ids)}"
        func, calls = QUEUE_PUSHES_FUNC, [(batch_id, (list(order_ids),), push_retry())]
    try:
        rt.queues.enqueue_new(ORDERS, func, calls, timeout=queue.attempt_timeout(rt.settings))
    except Exception:
        logger.exception("order push enqueue failed; the sweeper will retry", extra={"order_ids": order_ids})
        return False
    return True


def queue_pushes(order_ids: list[int]) -> int:
    """The job that queues the pushes of orders committed together (`enqueue_new`), each once: a push the
    sweeper queued meanwhile is left as it is. Returns how many it queued."""
    rt = runtime.current()
    queued = 0
    for order_id in order_ids:  # a failure fails the job: RQ retries it
        queued += _enqueue(rt, order_id) is not None
    logger.info("order pushes queued", extra={"orders": len(order_ids), "queued": queued})
    return queued


_PUSHES: Final = "storelink.new_pushes"


def request_push(session: Session, order_id: int) -> None:
    """Queue the push of the new order `order_id` once `session`'s transaction commits (nothing is queued on
    rollback). The order was just written, so no job of it can be live: no dedupe lookup first. The pushes
    a transaction requested are queued together (`enqueue_new`)."""
    pending: list[int] | None = session.info.get(_PUSHES)
    if pending is None:
        pending = session.info[_PUSHES] = []

        def _after_commit(done: Session) -> None:
            ids = done.info.pop(_PUSHES, [])
            if ids:
                enqueue_new(runtime.current(), ids)

        event.listen(session, "after_commit", _after_commit, once=True)
    pending.append(order_id)


# --- the job -------------------------------------------------------------------------------------------------


_adapters: OrderedDict[tuple[int, datetime | None], StoreAdapter] = OrderedDict()


def adapter_for(rt: runtime.Runtime, merchant: Merchant) -> StoreAdapter:
    """One adapter per merchant and process, so that a store client's pacing state lasts across jobs."""
    key = (merchant.id, merchant.updated_at)
    adapter = _adapters.get(key)
    if adapter is None:
        for stale in [k for k in _adapters if k[0] == merchant.id]:
            del _adapters[stale]
        adapter = build_adapter(merchant, rt.secrets, rt.settings)
        _adapters[key] = adapter
        while len(_adapters) > _ADAPTER_CACHE_SIZE:
            _adapters.popitem(last=False)
    else:
        _adapters.move_to_end(key)
    return adapter


def _address(data: dict[str, Any]) -> Address | None:
    if not data or not data.get("line1") or not data.get("country_code"):
        return None
    return Address(
        name=str(data.get("name") or ""),
        line1=str(data["line1"]),
        city=str(data.get("city") or ""),
        country_code=str(data["country_code"]),
        postal_code=str(data.get("postal_code") or ""),
        line2=str(data.get("line2") or ""),
        province_code=str(data.get("province_code") or ""),
        phone=str(data.get("phone") or ""),
    )


def _attribution(session: Session, order: Order) -> Attribution | None:
    """The creator credited with the order, for the store's copy of it."""
    if not order.affiliate_creator_ref or not order.attributed_via:
        return None
    code = (
        session.scalar(select(AffiliateLink.code).where(AffiliateLink.id == order.affiliate_link_id))
        if order.affiliate_link_id is not None
        else None
    )
    return Attribution(
        via=order.attributed_via,
        creator_ref=order.affiliate_creator_ref,
        program_id=order.affiliate_program_id,
        link_id=order.affiliate_link_id,
        link_code=code,
        click_id=order.click_id,
    )


def _push_order(session: Session, order: Order) -> PushOrder:
    rows = session.execute(
        select(OrderLine, Variant.external_id)
        .join(Variant, Variant.id == OrderLine.variant_id)
        .where(OrderLine.order_id == order.id)
        .order_by(OrderLine.id)
    ).all()
    currency = order.currency
    lines = tuple(
        PushLine(
            variant_external_id=external_id,
            quantity=line.quantity,
            unit_price=Money(line.unit_price_minor, currency),
            discount=Money(line.discount_minor, currency) if line.discount_minor else None,
            tax=Money(line.tax_minor, currency) if line.tax_minor else None,
        )
        for line, external_id in rows
    )
    return PushOrder(
        id=order.public_id,
        currency=currency,
        lines=lines,
        buyer_email=order.buyer.get("email") if isinstance(order.buyer, dict) else None,
        shipping_address=_address(order.shipping_address or {}),
        attribution=_attribution(session, order),
    )


def claim_attempt(rt: runtime.Runtime, order_id: int) -> tuple[int, PushOrder, Merchant] | None:
    """Record the intent of one attempt and take the order's lease; None when there is nothing to do."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=queue.lease_seconds(rt.settings))
    with rt.db.session() as session:
        claimed = session.execute(
            update(Order)
            .where(
                Order.id == order_id,
                Order.status == OrderStatus.ACCEPTED.value,
                or_(Order.push_started_at.is_(None), Order.push_started_at < stale),
            )
            .values(push_attempts=Order.push_attempts + 1, push_started_at=now)
        ).rowcount  # type: ignore[attr-defined]
        order = session.get(Order, order_id)
        if order is None:
            raise PermanentError(f"no order {order_id}", code="order_not_found")
        if not claimed:
            logger.info(
                "order push not claimable; nothing to do",
                extra={"order_id": order_id, "status": order.status},
            )
            return None
        merchant = session.get(Merchant, order.merchant_id)
        if merchant is None or merchant.status != "installed":
            session.execute(update(Order).where(Order.id == order_id).values(push_started_at=None))
            raise PermanentError("merchant is not active", code="merchant_not_active")
        return order.push_attempts, _push_order(session, order), merchant


def release_attempt(rt: runtime.Runtime, order_id: int, attempt: int) -> None:
    """End an attempt that did not finish the order: its lease is freed, its intent stays recorded."""
    try:
        with rt.db.session() as session:
            session.execute(
                update(Order)
                .where(Order.id == order_id, Order.push_attempts == attempt)
                .values(push_started_at=None)
            )
    except Exception:
        logger.exception("order push lease not released; it expires", extra={"order_id": order_id})


def confirm_order(rt: runtime.Runtime, order_id: int, ref: ExternalOrderRef | None, attempt: int) -> bool:
    """Confirm the order with its store refs (none when the store took the sale as a stock reduction)."""
    with rt.db.session() as session:
        done = session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == OrderStatus.ACCEPTED.value)
            .values(
                status=OrderStatus.CONFIRMED.value,
                store_order_ref=ref.external_id if ref else None,
                store_order_name=ref.name if ref else None,
                push_started_at=None,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not done:
            return False
        order = session.get(Order, order_id)
        assert order is not None
        holds.settle_order(session, order_id, holds.CONFIRMED)
        problems.clear_problems(session, PUSH_SUCCESS, merchant_id=order.merchant_id)
        outbox.publish(
            session,
            [
                outbox.DomainEvent(
                    ORDER_CONFIRMED,
                    order.merchant_id,
                    {
                        "order_id": order.public_id,
                        "platform_order_id": order.platform_order_id,
                        "store_order_id": ref.external_id if ref else None,
                        "store_order_name": ref.name if ref else None,
                        "attempts": attempt,
                    },
                )
            ],
        )
    return True


def _reject(rt: runtime.Runtime, order_id: int, error: PermanentError) -> bool:
    reason = f"{error.code}: {error.message}"
    with rt.db.session() as session:
        done = session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == OrderStatus.ACCEPTED.value)
            .values(status=OrderStatus.REJECTED.value, rejection_reason=reason, push_started_at=None)
        ).rowcount  # type: ignore[attr-defined]
        if not done:
            return False
        order = session.get(Order, order_id)
        assert order is not None
        holds.settle_order(session, order_id, holds.RELEASED)
        outbox.publish(
            session,
            [
                outbox.DomainEvent(
                    ORDER_REJECTED,
                    order.merchant_id,
                    {
                        "order_id": order.public_id,
                        "platform_order_id": order.platform_order_id,
                        "code": error.code,
                        "reason": error.message,
                    },
                )
            ],
        )
    return True


def _failed(rt: runtime.Runtime, merchant_id: int, exc: BaseException) -> None:
    """An attempt that did not reach an answer: a sighting of `push_failing`, and of the store's cause."""
    if not isinstance(exc, Exception) or getattr(exc, "code", None) in problems.OWN_CODES:
        return  # the worker is being stopped, or waited on a lock of Storelink's own: not the store's doing
    detail = (
        f"{exc.code}: {exc.message}" if isinstance(exc, StorelinkError) else f"{type(exc).__name__}: {exc}"
    )
    problems.report(rt.db, problems.PUSH_FAILING, merchant_id=merchant_id, detail=detail)
    cause = problems.store_failure_cause(exc)
    if cause is not None:
        problems.report(rt.db, cause, merchant_id=merchant_id, detail=detail)


def push_order(order_id: int) -> str | None:
    """RQ job: push one `accepted` order to its store; returns the store's order id, None when not pushed
    (or when the store took the sale as a stock reduction).

    A confirmed or rejected order, or one whose push is in flight elsewhere, is left alone. RetryableError
    propagates to RQ's retry (the taxonomy handler honours Retry-After); PermanentError rejects the order;
    AuthError pauses the merchant and leaves the order `accepted` for a later push.
    """
    rt = runtime.current()
    claimed = claim_attempt(rt, order_id)
    if claimed is None:
        return None
    attempt, order, merchant = claimed
    key = push_key(order.id)
    log = {"order_id": order_id, "merchant_id": merchant.id, "attempt": attempt}
    ref: ExternalOrderRef | None
    try:
        adapter = adapter_for(rt, merchant)
        if store_orders.sells_by_stock(adapter):
            # The store cannot take the order (its merchant's capabilities leave out order push): its units
            # are taken off the store's stock instead, once, and the order is confirmed with no store order.
            store_orders.take_off_store_stock(
                rt, merchant.id, order, cast(ReducesStockForSale, adapter), merchant.kind
            )
            ref = None
        else:
            ref = adapter.find_order(key) if attempt > 1 else None
            if ref is not None:
                logger.info("order found in the store from an earlier attempt", extra=log)
            else:
                ref = adapter.create_order(order, key)
    except AuthError as exc:
        release_attempt(rt, order_id, attempt)
        with rt.db.session() as session:
            syncs.pause_merchant(session, merchant.id, f"store refused credentials: {exc.message}")
        logger.warning("order push refused credentials; merchant paused", extra={**log, "code": exc.code})
        raise
    except PermanentError as exc:
        _reject(rt, order_id, exc)
        logger.warning("order rejected by the store", extra={**log, "code": exc.code, "error": exc.message})
        raise
    except BaseException as exc:
        release_attempt(rt, order_id, attempt)
        _failed(rt, merchant.id, exc)
        if isinstance(exc, RetryableError) and exc.code not in _STORE_DID_NOTHING:
            # The store may still be working on a request we gave up on: look only after it must have ended.
            exc.retry_after = max(exc.retry_after or 0.0, rt.settings.http_timeout_seconds)
        logger.warning(
            "order push failed; will retry", extra={**log, "error": f"{type(exc).__name__}: {exc}"}
        )
        raise
    store_order = ref.external_id if ref is not None else None
    if confirm_order(rt, order_id, ref, attempt):
        logger.info("order confirmed", extra={**log, "store_order": store_order})
    return store_order


# --- the sweeper ---------------------------------------------------------------------------------------------


def _move_overdue_retries(rt: runtime.Runtime, now: datetime) -> int:
    """Enqueue push retries whose time is long past, as RQ's scheduler would have, keeping their retries."""
    queue = rt.queues[ORDERS]
    registry = ScheduledJobRegistry(queue=queue)
    due = [
        jid
        for jid in registry.get_jobs_to_schedule(int((now - OVERDUE_RETRY).timestamp()))
        if jid.startswith(job_id(0)[:-1])
    ]
    moved = 0
    for job in Job.fetch_many(due, connection=rt.redis):
        if job is None:
            continue
        registry.remove(job)
        queue.enqueue_job(job)
        moved += 1
        logger.warning("overdue order push retry enqueued", extra={"job_id": job.id})
    return moved


def _died_before_claiming(
    rt: runtime.Runtime, order_id: int, stale: datetime, queued: Callable[[], frozenset[str]]
) -> bool:
    """A push job that no worker will run although RQ calls it live and no attempt was ever recorded: its
    worker died between taking it and claiming the order, either after RQ marked it started (since before
    `stale`) or before (it is still called queued, since before `stale`, but no queue holds it any more)."""
    try:
        job = Job.fetch(job_id(order_id), connection=rt.redis)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        since = job.started_at
    elif status == JobStatus.QUEUED:
        since = job.enqueued_at
        if since is None or (since if since.tzinfo else since.replace(tzinfo=UTC)) >= stale:
            return False
        return job.id not in queued()  # in the queue: waiting its turn
    else:
        return False
    if since is None:
        return False
    return (since if since.tzinfo else since.replace(tzinfo=UTC)) < stale


def _first_takeover(rt: runtime.Runtime, order_id: int, started_at: datetime) -> bool:
    """Whether this sweep is the first to take over the stale attempt that started at `started_at`. The job
    taking it over runs under the same job id, so while it waits (on the row the lost worker still holds,
    until the database drops that worker's session) RQ calls it started as it called the lost one: without
    this mark every sweep would queue one more copy, each holding a worker on the same row. The mark lasts a
    lease, after which a takeover that was itself lost is taken over again."""
    key = _TAKEN_OVER.format(order_id, started_at.timestamp())
    return bool(rt.redis.set(key, 1, nx=True, ex=math.ceil(queue.lease_seconds(rt.settings))))


def sweep(rt: runtime.Runtime | None = None) -> list[int]:
    """Periodic: re-enqueue `accepted` orders with no live push job, and take over pushes whose worker died
    (lease older than `lease_seconds` while the job still looks started). Returns the order ids."""
    rt = rt or runtime.current()
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=queue.lease_seconds(rt.settings))
    _move_overdue_retries(rt, now)
    with rt.db.session() as session:
        candidates = session.execute(
            select(Order.id, Order.push_started_at)
            .join(Merchant, Merchant.id == Order.merchant_id)
            .where(
                Order.status == OrderStatus.ACCEPTED.value,
                Merchant.status == "installed",
                Order.created_at < now - SWEEP_GRACE,
                Order.push_attempts < MAX_SWEPT_ATTEMPTS,
            )
            .order_by(Order.id)
        ).all()
    revived: list[int] = []
    in_queue: list[frozenset[str]] = []

    def queued() -> frozenset[str]:
        """The job ids in the orders queue, read once per sweep and only when asked."""
        if not in_queue:
            in_queue.append(frozenset(rt.queues[ORDERS].get_job_ids()))
        return in_queue[0]

    for order_id, started_at in candidates:
        status = rt.queues.job_status(job_id(order_id))
        if started_at is None:
            if status in LIVE_STATUSES and not _died_before_claiming(rt, order_id, stale, queued):
                continue
            takeover = status is not None
        elif started_at < stale and status not in _WAITING and _first_takeover(rt, order_id, started_at):
            takeover = True
        else:
            continue
        if enqueue(rt, order_id, takeover=takeover):
            revived.append(order_id)
            logger.warning(
                "order push re-enqueued",
                extra={"order_id": order_id, "was": str(status) if status else None, "takeover": takeover},
            )
    return revived
