"""The demo's figures, read back when everything has settled: from the database Storelink left, the emulated
stores and the platform receiver, never from what the steps expected. `balanced` is worked out from the
ledger (each order line's entries against the commission on what the line still keeps, states against
totals, payouts against the entries they paid, the API's balances against the ledger); `oversold` from the
orders in the database and in the store."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Final, NamedTuple

from rich.table import Table
from sqlalchemy import func, select

from connector.affiliates.amounts import commission, kept_base
from connector.demo.creators import showcase_items
from connector.demo.orders import PUSHED
from connector.demo.stage import Stage
from connector.infra.models import (
    AffiliateClick,
    AffiliateLink,
    AffiliatePayout,
    CommissionEntry,
    Delivery,
    EventPayload,
    InboundEvent,
    Merchant,
    Order,
    OrderLine,
    Product,
    Showcase,
    SyncRun,
    Variant,
)

logger = logging.getLogger(__name__)

SETTLE_TIMEOUT: Final = 120.0
QUIET_SECONDS: Final = 3.0
"""How long nothing may be pending before the webhooks count as settled: longer than the scheduler's sweeps
(2 s in the demo), whose jobs can raise events of their own."""
STATES: Final = ("pending", "approved", "paid")


class Line(NamedTuple):
    """An order line as the ledger check reads it."""

    unit_price_minor: int
    quantity: int
    discount_minor: int
    refunded_quantity: int
    status: str
    store_order_ref: str | None
    variant_ref: str


def _pending(stage: Stage) -> int:
    with stage.rt.db.session() as session:
        outbound = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
        )
        inbound = session.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "pending")
        )
    return int(outbound or 0) + int(inbound or 0)


def wait_for_deliveries(stage: Stage) -> str:
    """Until the stores' webhooks are applied and every event has reached the platform, and nothing new has
    come for QUIET_SECONDS (an applied webhook, or a scheduled job, can raise new events)."""
    quiet_since: list[float] = []

    def settled() -> bool:
        if _pending(stage):
            quiet_since.clear()
            return False
        if not quiet_since:
            quiet_since.append(time.monotonic())
        return time.monotonic() - quiet_since[0] >= QUIET_SECONDS

    stage.wait(settled, SETTLE_TIMEOUT, "the delivery of every webhook")
    received = stage.emulators.platform.receiver.received()
    return f"{len(received):,} events received and verified by the platform"


def _catalog(stage: Stage) -> dict[str, int]:
    with stage.rt.db.session() as session:
        rows = session.execute(
            select(Merchant.kind, func.count())
            .join(Product, Product.merchant_id == Merchant.id)
            .where(Product.status == "active")
            .group_by(Merchant.kind)
        ).tuples()
        counts = dict(rows.all())
    return {kind: int(counts.get(kind, 0)) for kind in ("shopify", "walmart", "feed")}


def _orders(stage: Stage) -> tuple[dict[str, int], dict[str, int]]:
    """The JSON's order figures, and the count per status."""
    with stage.rt.db.session() as session:
        statuses = {
            status: int(count)
            for status, count in session.execute(select(Order.status, func.count()).group_by(Order.status))
        }
    figures = {
        "accepted": sum(statuses.values()),
        "confirmed": sum(statuses.get(status, 0) for status in PUSHED),
        "rejected": statuses.get("rejected", 0),
    }
    return figures, statuses


def _live(stage: Stage) -> tuple[dict[str, int], int, int]:
    """The pin's allocation and units sold (database), the units in the store's orders for those sales, and
    the buyers over the per-buyer limit."""
    facts = stage.facts["live"]
    with stage.rt.db.session() as session:
        rows = session.execute(
            select(Order.status, Order.buyer, Order.store_order_ref, OrderLine.quantity)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.live_pin_id == facts["pin_id"])
        ).all()
    sold, refs = 0, set()
    per_buyer: dict[str, int] = defaultdict(int)
    for status, buyer, ref, quantity in rows:
        if status in ("rejected", "cancelled"):
            continue
        sold += quantity
        per_buyer[str((buyer or {}).get("ref"))] += quantity
        if ref:
            refs.add(ref)
    shop = stage.emulators.shopify.store
    in_store = sum(
        line.quantity for ref in refs for line in shop.order(ref).line_items if line.variant is not None
    )
    over = sum(1 for units in per_buyer.values() if units > stage.sizes.per_buyer_limit)
    return {"allocation": facts["allocation"], "sold": sold}, in_store, over


def _store_refunds(stage: Stage) -> dict[tuple[str, str], int]:
    """Units the Shopify shop has refunded, by (order id, variant id) as Storelink keeps them."""
    shop = stage.emulators.shopify.store
    with shop.lock:
        return {
            (order.id, line.variant.id): line.refunded_quantity
            for order in shop.orders.values()
            for line in order.line_items
            if line.variant is not None and line.refunded_quantity
        }


def _line_balance(entries: list[CommissionEntry], line: Line, refunded: int) -> bool:
    """The entries of one order line (for one attribution) sum to the commission on what it still keeps:
    nothing once its order was cancelled or refused, else its units less those refunded (by the platform, or
    in the store)."""
    rate = next(entry.rate_bps for entry in entries if entry.kind == "accrual")
    net = line.unit_price_minor * line.quantity - line.discount_minor
    gone = max(line.refunded_quantity, refunded)
    kept = 0 if line.status in ("cancelled", "rejected") else kept_base(net, line.quantity, gone)
    return sum(entry.amount_minor for entry in entries) == commission(kept, rate)


def _lines(stage: Stage) -> dict[int, Line]:
    with stage.rt.db.session() as session:
        rows = session.execute(
            select(
                OrderLine.id,
                OrderLine.unit_price_minor,
                OrderLine.quantity,
                OrderLine.discount_minor,
                OrderLine.refunded_quantity,
                Order.status,
                Order.store_order_ref,
                Variant.external_id,
            )
            .join(Order, Order.id == OrderLine.order_id)
            .join(Variant, Variant.id == OrderLine.variant_id)
        ).tuples()
        return {row[0]: Line(*row[1:]) for row in rows}


def _ledger(stage: Stage, api_balanced: bool) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The JSON's commission figures (with `balanced` worked out), and the sums per creator and state."""
    with stage.rt.db.session() as session:
        entries = list(session.scalars(select(CommissionEntry)))
        payouts = list(session.scalars(select(AffiliatePayout)))
    lines, refunds = _lines(stage), _store_refunds(stage)
    per_creator: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((*STATES, "reversed"), 0))
    grouped: dict[tuple[int, str], list[CommissionEntry]] = defaultdict(list)
    for entry in entries:
        per_creator[entry.creator_ref][entry.state] += entry.amount_minor
        if entry.kind == "reversal":
            per_creator[entry.creator_ref]["reversed"] -= entry.amount_minor
        grouped[(entry.order_line_id, entry.attribution_ref)].append(entry)
    totals = {state: sum(c[state] for c in per_creator.values()) for state in (*STATES, "reversed")}
    lines_balance = all(
        _line_balance(group, line, refunds.get((line.store_order_ref or "", line.variant_ref), 0))
        for (line_id, _), group in grouped.items()
        for line in (lines[line_id],)
    )
    states_balance = sum(totals[state] for state in STATES) == sum(entry.amount_minor for entry in entries)
    payouts_balance = all(
        payout.total_minor == sum(e.amount_minor for e in entries if e.payout_id == payout.id)
        for payout in payouts
    ) and totals["paid"] == sum(payout.total_minor for payout in payouts)
    checks = {
        "lines": lines_balance,
        "states": states_balance,
        "payouts": payouts_balance,
        "api": api_balanced,
    }
    if not all(checks.values()):
        logger.warning("commission ledger does not balance", extra={"checks": checks})
    figures = {
        "creators": len(per_creator),
        "pending_minor": totals["pending"],
        "approved_minor": totals["approved"],
        "paid_minor": totals["paid"],
        "reversed_minor": totals["reversed"],
        "balanced": all(checks.values()),
    }
    return figures, dict(per_creator)


def _api_balances(stage: Stage) -> bool:
    """Each creator's balance as the Platform API reports it equals its unpaid entries in the ledger."""
    with stage.rt.db.session() as session:
        unpaid = dict(
            session.execute(
                select(CommissionEntry.creator_ref, func.sum(CommissionEntry.amount_minor))
                .where(CommissionEntry.state != "paid", CommissionEntry.currency == "USD")
                .group_by(CommissionEntry.creator_ref)
            )
            .tuples()
            .all()
        )
    for creator in stage.creators():
        earnings = stage.platform.get(f"/v1/creators/{creator}/earnings")
        usd = next((c for c in earnings["currencies"] if c["currency"] == "USD"), None)
        balance = usd["balance_minor"] if usd else 0
        if balance != int(unpaid.get(creator) or 0):
            logger.warning("creator balance differs", extra={"creator": creator, "api": balance})
            return False
    return True


def _webhooks(stage: Stage) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Outbound deliveries (delivered, verified by the receiver, failed), events by family, and the stores'
    webhooks received (applied, failed)."""
    receiver = stage.emulators.platform.receiver
    with stage.rt.db.session() as session:
        deliveries = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).tuples().all()
        )
        types = session.execute(select(EventPayload.type, func.count()).group_by(EventPayload.type)).tuples()
        inbound = dict(
            session.execute(select(InboundEvent.status, func.count()).group_by(InboundEvent.status))
            .tuples()
            .all()
        )
    families: dict[str, int] = defaultdict(int)
    for event_type, count in types:
        families[event_type.split(".", 1)[0]] += int(count)
    outbound = {
        "delivered": int(deliveries.get("succeeded", 0)),
        "verified": len(receiver.received()),
        "failed": int(deliveries.get("failed", 0)),
    }
    stores = {
        "received": sum(int(n) for n in inbound.values()),
        "applied": int(inbound.get("processed", 0)),
        "skipped": int(inbound.get("skipped", 0)),
        "failed": int(inbound.get("failed", 0)),
    }
    return outbound, dict(families), stores


def _links(stage: Stage) -> dict[str, int]:
    with stage.rt.db.session() as session:
        links = session.scalar(select(func.count()).select_from(AffiliateLink))
        clicks = session.scalar(select(func.count()).select_from(AffiliateClick))
        via = dict(
            session.execute(
                select(Order.attributed_via, func.count())
                .where(Order.attributed_via.is_not(None))
                .group_by(Order.attributed_via)
            )
            .tuples()
            .all()
        )
    return {
        "links": int(links or 0),
        "clicks": int(clicks or 0),
        "click": via.get("click", 0),
        "code": via.get("code", 0),
    }


def _showcases(stage: Stage) -> int:
    with stage.rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Showcase)) or 0)


def _problems(stage: Stage) -> dict[str, int]:
    with stage.rt.db.session() as session:
        merchants = session.scalar(
            select(func.count()).select_from(Merchant).where(Merchant.problem.is_not(None))
        )
        runs = session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.status == "failed"))
    unverified = sum(1 for request in stage.emulators.platform.receiver.requests() if not request.verified)
    return {
        "merchants with a problem": int(merchants or 0),
        "failed syncs": int(runs or 0),
        "unverified webhooks": unverified,
    }


def _figures(stage: Stage, items: int, api_balanced: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figures of the JSON line, and the details the tables add to them."""
    orders, statuses = _orders(stage)
    live, in_store, over_limit = _live(stage)
    commissions, per_creator = _ledger(stage, api_balanced)
    outbound, families, store_webhooks = _webhooks(stage)
    problems = _problems(stage)
    figures: dict[str, Any] = {
        "demo": "storelink",
        "products_synced": _catalog(stage),
        "orders": orders,
        "live": live,
        "oversold": max(0, max(live["sold"], in_store) - live["allocation"]),
        "commissions": commissions,
        "showcases": {"count": _showcases(stage), "items": items},
        "webhooks": outbound,
        "store_webhooks": store_webhooks,
        "problems": sum(problems.values())
        + orders["rejected"]
        + outbound["failed"]
        + store_webhooks["failed"],
        "seconds": round(time.monotonic() - stage.started, 1),
    }
    details = {
        "links": _links(stage),
        "statuses": statuses,
        "in_store": in_store,
        "over_limit": over_limit,
        "per_creator": per_creator,
        "families": families,
        "problems": problems,
    }
    return figures, details


def _money(minor: int) -> str:
    return f"{minor / 100:,.2f}"


def _rows(figures: dict[str, Any], details: dict[str, Any], sale: dict[str, Any]) -> list[tuple[str, ...]]:
    statuses, live, shows = details["statuses"], figures["live"], figures["showcases"]
    hooks, inbound, links = figures["webhooks"], figures["store_webhooks"], details["links"]
    problems = ", ".join(f"{what} {count}" for what, count in details["problems"].items())
    return [
        *(("catalog sync", f"{kind} products", f"{n:,}") for kind, n in figures["products_synced"].items()),
        (
            "creators",
            "links / visits counted / orders by click, code",
            "{links} / {clicks} / {click}, {code}".format(**links),
        ),
        (
            "checkout",
            "orders accepted / confirmed / rejected",
            "{accepted} / {confirmed} / {rejected}".format(**figures["orders"]),
        ),
        (
            "store webhooks",
            "orders fulfilled / refunded",
            f"{statuses.get('fulfilled', 0)} / {statuses.get('refunded', 0)}",
        ),
        (
            "live sale",
            "purchase attempts (bought / refused)",
            f"{sale['attempts']:,} ({sale['accepted']} / {sale['refused']})",
        ),
        ("live sale", "units sold / allocation", f"{live['sold']} / {live['allocation']}"),
        ("live sale", "units in the store's orders", str(details["in_store"])),
        (
            "live sale",
            "oversold units / buyers over the limit",
            f"{figures['oversold']} / {details['over_limit']}",
        ),
        ("showcases", "showcases / items shown", f"{shows['count']} / {shows['items']}"),
        (
            "platform webhooks",
            "delivered / verified / failed",
            "{delivered:,} / {verified:,} / {failed}".format(**hooks),
        ),
        (
            "platform webhooks",
            "events by kind",
            ", ".join(f"{k} {v:,}" for k, v in sorted(details["families"].items())),
        ),
        (
            "store webhooks",
            "received / applied / not needed / failed",
            "{received:,} / {applied:,} / {skipped:,} / {failed}".format(**inbound),
        ),
        ("problems", "raised", f"{figures['problems']} ({problems})"),
    ]


def _tables(figures: dict[str, Any], details: dict[str, Any], stage: Stage) -> list[Table]:
    features = Table("feature", "figure", "value", title="Storelink demo", title_justify="left")
    for row in _rows(figures, details, stage.facts["live"]):
        features.add_row(*row)
    ledger = Table("creator", *STATES, "reversed", title="Commission by creator (USD)", title_justify="left")
    for creator, sums in sorted(details["per_creator"].items()):
        ledger.add_row(creator, *(_money(sums[state]) for state in (*STATES, "reversed")))
    ledger.caption = f"ledger balanced: {'yes' if figures['commissions']['balanced'] else 'NO'}"
    return [features, ledger]


def collect(stage: Stage, *, freeze: bool) -> tuple[dict[str, Any], list[Table]]:
    """The figures of the JSON line, and the summary tables showing them. What the Platform API answers
    (showcase items, creators' balances) is read first; with `freeze`, `storelink up` is then stopped, so
    that the rest is read from a database nothing changes any more: the figures are what it keeps."""
    items = sum(showcase_items(stage, showcase_id) for showcase_id in stage.showcases)
    api_balanced = _api_balances(stage)
    if freeze:
        stage.up.stop()
    figures, details = _figures(stage, items, api_balanced)
    return figures, _tables(figures, details, stage)
