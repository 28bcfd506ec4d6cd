"""Showcase events: what changed in what a viewer sees, announced once per change and coalesced per merchant.

Each showcase keeps the visible set it last announced (`showcases.snapshot`: product, price, sale price,
currency, availability, in order). `refresh` recomputes the view, diffs it against that snapshot and returns
at most two events: `showcase.updated` when the visible set or order changed (items added, removed, moved)
and `showcase.item_updated` when price or availability of items still visible changed. A change of stock that
leaves an item available (10 units to 9) is not an event. `deleted` announces a showcase's end
(`showcase.deleted`, with the items it last showed), in the transaction that deletes it.

Catalog and stock changes reach showcases through an outbox subscriber (`install`, called by the composition
roots): a committed transaction that published product, stock or order events for a merchant some showcase
may show marks the merchant dirty in Redis and enqueues one refresh job per merchant (`refresh_merchant`,
deduplicated by job id while queued). The job clears the mark, then refreshes every showcase the merchant's
products may appear in, and goes round again if the mark was set meanwhile. A resync of 10,000 variants
therefore announces each showcase's net change once or a few times (one per refresh pass), never once per
variant. The scheduler's `sweep` queues every such merchant each sweep interval, for what no event announces
(holds expiring) and for requests lost in a crash.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from typing import Any, Final

from redis import Redis
from sqlalchemy import bindparam, event, or_, select
from sqlalchemy.orm import Session

from connector.domain import event_types
from connector.infra import outbox, runtime
from connector.infra.models import Merchant, Showcase
from connector.infra.queue import EVENTS
from connector.showcases import cache, views

logger = logging.getLogger(__name__)

WATCHED: Final = frozenset(
    {
        event_types.PRODUCT_UPDATED,
        event_types.PRODUCT_DELETED,
        event_types.INVENTORY_UPDATED,
        event_types.ORDER_ACCEPTED,
        event_types.ORDER_REJECTED,
        event_types.ORDER_CANCELLED,
    }
)
"""Event types that may change a showcase's view: catalog, stock, and holds taken or given back."""
REFRESH_FUNC: Final = "connector.showcases.events.refresh_merchant"
DIRTY_TTL: Final = 3600
MAX_PASSES: Final = 10
_PENDING, _HOOKED = "showcases.pending", "showcases.hooked"


def dirty_key(merchant_id: int) -> str:
    return f"storelink:showcases:dirty:{merchant_id}"


def job_id(merchant_id: int) -> str:
    return f"showcases-refresh-{merchant_id}"


# --- the diff -----------------------------------------------------------------------------------------------


def _moved(old_ids: Sequence[int], new_ids: Sequence[int]) -> set[int]:
    """Products that changed place: those outside a longest run kept in the same relative order."""
    common = set(old_ids) & set(new_ids)
    rank = {pid: i for i, pid in enumerate(p for p in old_ids if p in common)}
    sequence = [rank[p] for p in new_ids if p in common]
    tails: list[int] = []
    tail_at: list[int] = []
    parent = [-1] * len(sequence)
    for index, value in enumerate(sequence):
        place = bisect.bisect_left(tails, value)
        if place == len(tails):
            tails.append(value)
            tail_at.append(index)
        else:
            tails[place], tail_at[place] = value, index
        parent[index] = tail_at[place - 1] if place else -1
    kept: set[int] = set()
    at = tail_at[-1] if tail_at else -1
    while at >= 0:
        kept.add(sequence[at])
        at = parent[at]
    order = [p for p in new_ids if p in common]
    return {order[i] for i, value in enumerate(sequence) if value not in kept}


def diff(
    showcase: Showcase, old: Sequence[Sequence[Any]], new: Sequence[Sequence[Any]]
) -> list[dict[str, Any]]:
    """The (type, data) of the events between two snapshots, as `[{"type": ..., "data": ...}]`."""
    old_ids, new_ids = [row[0] for row in old], [row[0] for row in new]
    position = {pid: i for i, pid in enumerate(new_ids)}
    before = {row[0]: list(row[1:]) for row in old}
    added = [pid for pid in new_ids if pid not in before]
    removed = [pid for pid in old_ids if pid not in position]
    moved = _moved(old_ids, new_ids)
    head = _head(showcase)
    out: list[dict[str, Any]] = []
    if added or removed or moved:
        data = {
            **head,
            "added": [{"product_id": pid, "position": position[pid]} for pid in added],
            "removed": removed,
            "moved": [{"product_id": pid, "position": position[pid]} for pid in new_ids if pid in moved],
            "count": len(new_ids),
        }
        out.append({"type": event_types.SHOWCASE_UPDATED, "data": data})
    changed = [row for row in new if row[0] in before and list(row[1:]) != before[row[0]]]
    if changed:
        items = [
            {
                "product_id": pid,
                "position": position[pid],
                "price_minor": price,
                "sale_price_minor": sale,
                "currency": currency,
                "available": available,
            }
            for pid, price, sale, currency, available in changed
        ]
        out.append({"type": event_types.SHOWCASE_ITEM_UPDATED, "data": {**head, "items": items}})
    return out


def _head(showcase: Showcase) -> dict[str, Any]:
    return {"showcase_id": showcase.id, "handle": showcase.handle, "owner_kind": showcase.owner_kind}


def _event_merchant(session: Session, showcase: Showcase) -> int | None:
    """The merchant an event is filed under, which scopes its delivery to the owner's platform client."""
    if showcase.merchant_id is not None:
        return showcase.merchant_id
    return session.scalar(
        select(Merchant.id)
        .where(Merchant.platform_client_id == showcase.platform_client_id)
        .order_by(Merchant.id)
        .limit(1)
    )


def refresh(session: Session, showcase: Showcase) -> int:
    """Recompute `showcase`'s view, publish what changed since the last announcement, keep the new snapshot;
    the number of events published."""
    new = [item.snapshot() for item in views.visible(session, showcase)]
    old = list(showcase.snapshot or [])
    if new == old:
        return 0
    found = diff(showcase, old, new)
    showcase.snapshot = new
    if not found:
        return 0
    merchant_id = _event_merchant(session, showcase)
    published = outbox.publish(
        session, [outbox.DomainEvent(e["type"], merchant_id, e["data"]) for e in found]
    )
    logger.info("showcase changed", extra={"showcase_id": showcase.id, "events": [e["type"] for e in found]})
    return published


def deleted(session: Session, showcase: Showcase) -> int:
    """Publish `showcase.deleted` for `showcase` (deleted in the same transaction): who owned it and the
    products it last showed."""
    data = {
        **_head(showcase),
        "merchant_id": showcase.merchant_id,
        "creator_ref": showcase.creator_ref,
        "removed": [row[0] for row in showcase.snapshot or []],
    }
    event = outbox.DomainEvent(event_types.SHOWCASE_DELETED, _event_merchant(session, showcase), data)
    published = outbox.publish(session, [event])
    logger.info("showcase deletion announced", extra={"showcase_id": showcase.id})
    return published


# --- coalesced refresh after catalog and stock changes --------------------------------------------------------


def affected(session: Session, merchant_id: int) -> list[int]:
    """Showcases the merchant's products may appear in: its own, and its client's creators' showcases."""
    client_id = session.scalar(select(Merchant.platform_client_id).where(Merchant.id == merchant_id))
    condition = Showcase.merchant_id == merchant_id
    if client_id is not None:
        condition = or_(
            condition, (Showcase.owner_kind == views.CREATOR) & (Showcase.platform_client_id == client_id)
        )
    return list(session.scalars(select(Showcase.id).where(condition).order_by(Showcase.id)))


def with_showcases(session: Session, merchant_ids: set[int]) -> set[int]:
    """The merchants among `merchant_ids` whose products a showcase may show (two indexed queries)."""
    found = set(session.scalars(_SHOWN, {"merchant_ids": sorted(merchant_ids)}))
    rest = merchant_ids - found
    if rest:
        found |= set(session.scalars(_CREATORS_SHOW, {"merchant_ids": sorted(rest)}))
    return {m for m in found if m is not None}


_SHOWN: Final = (
    select(Showcase.merchant_id)
    .where(Showcase.merchant_id.in_(bindparam("merchant_ids", expanding=True)))
    .distinct()
)
_CREATORS_SHOW: Final = select(Merchant.id).where(
    Merchant.id.in_(bindparam("merchant_ids", expanding=True)),
    Merchant.platform_client_id.in_(
        select(Showcase.platform_client_id).where(Showcase.owner_kind == views.CREATOR)
    ),
)
"""The queries of `with_showcases`, built once (the merchant ids bound at execution)."""


def refresh_showcase(rt: runtime.Runtime, showcase_id: int) -> int:
    with rt.db.session() as session:
        showcase = session.scalar(select(Showcase).where(Showcase.id == showcase_id).with_for_update())
        return 0 if showcase is None else refresh(session, showcase)


def _take_mark(redis: Redis, merchant_id: int) -> bool:
    pipe = redis.pipeline()
    pipe.get(dirty_key(merchant_id))
    pipe.delete(dirty_key(merchant_id))
    value, _ = pipe.execute()
    return value is not None


def refresh_merchant(merchant_id: int) -> int:
    """RQ job: refresh the showcases of a merchant marked dirty, while it is marked; events published."""
    rt = runtime.current()
    published = 0
    for _pass in range(MAX_PASSES):
        if not _take_mark(rt.redis, merchant_id):
            break
        with rt.db.session() as session:
            ids = affected(session, merchant_id)
        for showcase_id in ids:
            published += refresh_showcase(rt, showcase_id)
        cache.invalidate(rt.redis, ids)  # prices and stock may have moved even where nothing was announced
    logger.debug("showcases refreshed", extra={"merchant_id": merchant_id, "events": published})
    return published


def request_refresh(rt: runtime.Runtime, merchant_ids: Sequence[int]) -> None:
    """Mark the merchants dirty and make sure a refresh job of each is queued."""
    for merchant_id in merchant_ids:
        rt.redis.set(dirty_key(merchant_id), 1, ex=DIRTY_TTL)
        rt.queues.enqueue(EVENTS, REFRESH_FUNC, merchant_id, job_id=job_id(merchant_id))


def sweep() -> int:
    """Scheduler job: queue a refresh of every merchant whose products showcases may show, catching what no
    event announces (holds expiring, a refresh request lost between commit and enqueue); merchants queued."""
    rt = runtime.current()
    with rt.db.session() as session:
        owners = set(session.scalars(select(Showcase.merchant_id).where(Showcase.merchant_id.is_not(None))))
        clients = select(Showcase.platform_client_id).where(Showcase.owner_kind == views.CREATOR)
        owners |= set(session.scalars(select(Merchant.id).where(Merchant.platform_client_id.in_(clients))))
    merchants = sorted(m for m in owners if m is not None)
    request_refresh(rt, merchants)
    logger.debug("showcase sweep", extra={"merchants": len(merchants)})
    return len(merchants)


def _after_commit(session: Session) -> None:
    pending: set[int] = session.info.pop(_PENDING, set())
    if not pending:
        return
    try:
        request_refresh(runtime.current(), sorted(pending))
    except Exception:  # the commit stands; the next change of the merchant refreshes its showcases
        logger.exception("showcase refresh could not be requested", extra={"merchants": sorted(pending)})


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def on_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Outbox subscriber: after the commit, refresh the showcases of merchants whose catalog or stock moved."""
    merchants = {r["merchant_id"] for r in rows if r["type"] in WATCHED and r.get("merchant_id") is not None}
    if merchants:
        merchants = with_showcases(session, merchants)
    if not merchants:
        return
    session.info.setdefault(_PENDING, set()).update(merchants)
    if not session.info.get(_HOOKED):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED] = True


def install() -> None:
    outbox.subscribe(on_events)


def uninstall() -> None:
    outbox.unsubscribe(on_events)
