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
QUIET_POLLS: Final = 3
"""Polls in a row with nothing pending before the webhooks count as settled."""
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
    """Until the stores' webhooks are applied and every event has reached the platform (several polls in a
    row with nothing pending: an applied webhook can raise new events)."""
    quiet = {"polls": 0}

    def settled() -> bool:
        quiet["polls"] = quiet["polls"] + 1 if _pending(stage) == 0 else 0
        return quiet["polls"] >= QUIET_POLLS

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


def _ledger(stage: Stage) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
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
        "api": _api_balances(stage, per_creator),
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


def _api_balances(stage: Stage, per_creator: dict[str, dict[str, int]]) -> bool:
    """Each creator's balance as the Platform API reports it equals its unpaid entries in the ledger."""
    for creator, sums in per_creator.items():
        earnings = stage.platform.get(f"/v1/creators/{creator}/earnings")
        usd = next((c for c in earnings["currencies"] if c["currency"] == "USD"), None)
        balance = usd["balance_minor"] if usd else 0
        if balance != sums["pending"] + sums["approved"]:
            logger.warning(
                "creator balance differs", extra={"creator": creator, "api": balance, "ledger": sums}
            )
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


def _problems(stage: Stage) -> dict[str, int]:
    with stage.rt.db.session() as session:
        merchants = session.scalar(
            select(func.count()).select_from(Merchant).where(Merchant.problem.is_not(None))
        )
        runs = session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.status == "failed"))
        showcases = session.scalar(select(func.count()).select_from(Showcase))
    unverified = sum(1 for request in stage.emulators.platform.receiver.requests() if not request.verified)
    stage.facts["showcase_count"] = int(showcases or 0)
    return {
        "merchants": int(merchants or 0),
        "sync_runs_failed": int(runs or 0),
        "unverified_requests": unverified,
    }


def _figures(stage: Stage) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figures of the JSON line, and the details the tables add to them."""
    orders, statuses = _orders(stage)
    live, in_store, over_limit = _live(stage)
    commissions, per_creator = _ledger(stage)
    outbound, families, store_webhooks = _webhooks(stage)
    problems = _problems(stage)
    items = sum(showcase_items(stage, showcase_id) for showcase_id in stage.showcases)
    figures: dict[str, Any] = {
        "demo": "storelink",
        "products_synced": _catalog(stage),
        "orders": orders,
        "live": live,
        "oversold": max(0, max(live["sold"], in_store) - live["allocation"]),
        "commissions": commissions,
        "showcases": {"count": stage.facts["showcase_count"], "items": items},
        "webhooks": outbound,
        "store_webhooks": store_webhooks,
        "problems": sum(problems.values())
        + orders["rejected"]
        + outbound["failed"]
        + store_webhooks["failed"],
        "seconds": round(time.monotonic() - stage.started, 1),
    }
    details = {
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


def _tables(figures: dict[str, Any], details: dict[str, Any], stage: Stage) -> list[Table]:
    stores = Table("feature", "figure", "value", title="Storelink demo", title_justify="left")
    synced = figures["products_synced"]
    for kind, count in synced.items():
        stores.add_row("catalog sync", f"{kind} products", f"{count:,}")
    statuses = details["statuses"]
    orders = figures["orders"]
    stores.add_row(
        "checkout",
        "orders accepted / confirmed / rejected",
        "{accepted} / {confirmed} / {rejected}".format(**orders),
    )
    stores.add_row(
        "store webhooks",
        "orders fulfilled / refunded",
        f"{statuses.get('fulfilled', 0)} / {statuses.get('refunded', 0)}",
    )
    live = figures["live"]
    stores.add_row("live sale", "units sold / allocation", f"{live['sold']} / {live['allocation']}")
    stores.add_row("live sale", "units in the store's orders", str(details["in_store"]))
    stores.add_row(
        "live sale",
        "oversold units / buyers over the limit",
        f"{figures['oversold']} / {details['over_limit']}",
    )
    attempts = stage.facts["live"]
    stores.add_row(
        "live sale",
        "purchase attempts (bought / refused)",
        f"{attempts['attempts']:,} ({attempts['accepted']} / {attempts['refused']})",
    )
    shows = figures["showcases"]
    stores.add_row("showcases", "showcases / items shown", f"{shows['count']} / {shows['items']}")
    hooks, inbound = figures["webhooks"], figures["store_webhooks"]
    stores.add_row(
        "platform webhooks",
        "delivered / verified / failed",
        "{delivered:,} / {verified:,} / {failed}".format(**hooks),
    )
    stores.add_row(
        "platform webhooks",
        "events by kind",
        ", ".join(f"{k} {v:,}" for k, v in sorted(details["families"].items())),
    )
    stores.add_row(
        "store webhooks",
        "received / applied / not needed / failed",
        "{received:,} / {applied:,} / {skipped:,} / {failed}".format(**inbound),
    )
    problems = details["problems"]
    stores.add_row(
        "problems", "raised", f"{figures['problems']} ({', '.join(f'{k} {v}' for k, v in problems.items())})"
    )
    ledger = Table("creator", *STATES, "reversed", title="Commission by creator (USD)", title_justify="left")
    for creator, sums in sorted(details["per_creator"].items()):
        ledger.add_row(creator, *(_money(sums[state]) for state in (*STATES, "reversed")))
    balanced = figures["commissions"]["balanced"]
    ledger.caption = f"ledger balanced: {'yes' if balanced else 'NO'}"
    return [stores, ledger]


def collect(stage: Stage) -> tuple[dict[str, Any], list[Table]]:
    """The figures of the JSON line, and the summary tables showing them."""
    figures, details = _figures(stage)
    return figures, _tables(figures, details, stage)
