"""The demo's orders after the live sale: shoppers buying through creators' links in both stores (by click,
some by code), every order pushed to its store by the workers, some fulfilled and one refunded in the
emulated stores through their control endpoints (their webhooks bring it back), and the commission approved once the Shopify program's hold
is over, then one creator paid through `POST /v1/payouts`."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Final

import requests
from sqlalchemy import func, select

from connector.demo.api import TIMEOUT, ApiError
from connector.demo.stage import Link, Stage
from connector.infra.models import CommissionEntry, Order, OrderLine

logger = logging.getLogger(__name__)

PUSH_TIMEOUT: Final = 180.0
WEBHOOK_TIMEOUT: Final = 60.0
APPROVAL_TIMEOUT: Final = 60.0
QUANTITY: Final = {"shopify": 2, "walmart": 1}
CODE_EVERY: Final = 4
"""Every fourth linked order carries the link's code instead of a click."""
FULFIL_EVERY: Final = 3
ADDRESS: Final = {
    "name": "Ada Buyer",
    "line1": "1 Main Street",
    "city": "New York",
    "province_code": "NY",
    "country_code": "US",
    "postal_code": "10017",
    "phone": "+1 212 555 0100",
}
PUSHED: Final = ("confirmed", "fulfilled", "refunded")


def _variant(stage: Stage, product_id: int, cache: dict[int, dict[str, Any]]) -> dict[str, Any]:
    if product_id not in cache:
        cache[product_id] = stage.platform.get(f"/v1/products/{product_id}")["variants"][0]
    return cache[product_id]


def _order_body(link: Link, variant: dict[str, Any], n: int) -> dict[str, Any]:
    attribution = (
        {"link_code": link.code}
        if n % CODE_EVERY == CODE_EVERY - 1 or not link.click_ids
        else {"click_ids": [link.click_ids[n % len(link.click_ids)]]}
    )
    return {
        "lines": [
            {
                "variant_id": variant["id"],
                "quantity": QUANTITY[link.merchant],
                "unit_price_minor": variant["price"]["amount_minor"],
            }
        ],
        "currency": variant["price"]["currency"],
        "buyer": {"ref": f"shopper-{n}", "email": f"shopper-{n}@example.com"},
        "shipping_address": ADDRESS,
        "platform_order_id": f"app-order-{n}",
        "attribution": attribution,
    }


def linked_orders(stage: Stage) -> str:
    """`orders` checkouts, each for a product a creator links to, alternating the stores and the creators."""
    links = [link for link in stage.links if link.product_id != _flash(stage)]
    by_store = {name: [link for link in links if link.merchant == name] for name in QUANTITY}
    stores = [name for name, found in by_store.items() if found]
    if not stores:
        raise LookupError("no creator links to a product in stock")
    cache: dict[int, dict[str, Any]] = {}
    made: Counter[str] = Counter()
    for n in range(stage.sizes.orders):
        store = stores[n % len(stores)]
        link = by_store[store][(n // 2) % len(by_store[store])]
        body = _order_body(link, _variant(stage, link.product_id, cache), n)
        order = stage.platform.post("/v1/orders", body, **{"Idempotency-Key": f"linked-order-{n}"})
        made[f"{store} by {order['attribution']['via']}" if order.get("attribution") else store] += 1
    return ", ".join(f"{count} {what}" for what, count in sorted(made.items()))


def _flash(stage: Stage) -> int:
    return int(stage.facts["flash_variant"]["product_id"])


def order_statuses(stage: Stage) -> dict[str, int]:
    with stage.rt.db.session() as session:
        rows = session.execute(select(Order.status, func.count()).group_by(Order.status)).tuples()
        return dict(rows.all())


def wait_for_pushes(stage: Stage) -> str:
    """Until no order waits for its store: each confirmed (or refused) by the store it was pushed to."""

    def settled() -> dict[str, int] | None:
        counts = order_statuses(stage)
        return None if counts.get("accepted") else counts

    counts: dict[str, int] = stage.wait(settled, PUSH_TIMEOUT, "the orders' pushes to the stores")
    shop, seller = stage.emulators.shopify.store, stage.emulators.walmart.store
    return (
        f"{counts.get('confirmed', 0)} confirmed, {counts.get('rejected', 0)} refused by the store; "
        f"{len(shop.orders)} orders in the Shopify shop, {seller.fulfilment_orders_created} Multichannel "
        "orders at Walmart"
    )


def _refund_target(stage: Stage) -> Order:
    """The Shopify order to refund one unit of: a creator's order of more than one unit when there is one (it
    keeps a commission, smaller), else any confirmed one."""
    with stage.rt.db.session() as session:
        found = session.scalars(
            select(Order)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(Order.merchant_id == stage.merchants["shopify"], Order.status == "confirmed")
            .order_by((OrderLine.quantity > 1).desc(), Order.affiliate_creator_ref.is_(None), Order.id)
            .limit(1)
        ).first()
        if found is None:
            raise LookupError("no confirmed Shopify order to refund")
        session.expunge(found)
        return found


def _sandbox(base_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A control endpoint of an emulated store (`/_sandbox`, as `storelink sandbox` lists them): GET, or POST
    with a body."""
    method = "GET" if body is None else "POST"
    response = requests.request(method, f"{base_url}/_sandbox{path}", json=body, timeout=TIMEOUT)
    if response.status_code not in (200, 201):
        raise ApiError(method, f"/_sandbox{path}", response.status_code, response.text)
    return response.json()


def fulfil_and_refund(stage: Stage) -> str:
    """In the stores, through their control endpoints: every third Shopify order fulfilled, every third
    Multichannel order shipped, one unit of a creator's Shopify order refunded. The stores' webhooks bring
    each change back to Storelink."""
    target = _refund_target(stage)
    shop, seller = stage.emulators.shopify, stage.emulators.walmart
    listed = _sandbox(shop.url, "/orders")["orders"]
    refunded = next((order for order in listed if order["gid"] == target.store_order_ref), None)
    if refunded is None:
        raise LookupError(f"order {target.public_id} is not in the shop")
    line = refunded["lines"][0]["id"]
    _sandbox(shop.url, f"/orders/{refunded['id']}/refund", {"lines": {str(line): 1}, "note": "damaged"})
    fulfilled = 0
    for n, order in enumerate(sorted(listed, key=lambda o: o["id"])):
        if n % FULFIL_EVERY == 0 and order["id"] != refunded["id"]:
            _sandbox(shop.url, f"/orders/{order['id']}/fulfil", {"tracking_number": f"1Z{order['id']:016d}"})
            fulfilled += 1
    shipped = 0
    pushed = _sandbox(seller.url, "/fulfilments")["fulfilments"]
    for n, fulfilment in enumerate(sorted(pushed, key=lambda f: f["seller_order_id"])):
        if n % FULFIL_EVERY == 0 and fulfilment["status"] == "ACCEPTED":
            _sandbox(seller.url, f"/fulfilments/{fulfilment['seller_order_id']}/ship", {})
            shipped += 1

    def arrived() -> bool:
        counts = order_statuses(stage)
        with stage.rt.db.session() as session:
            reversals = session.scalar(
                select(func.count())
                .select_from(CommissionEntry)
                .where(CommissionEntry.order_id == target.id, CommissionEntry.kind == "reversal")
            )
        return (
            counts.get("fulfilled", 0) >= fulfilled + shipped
            and counts.get("refunded", 0) >= 1
            and (bool(reversals) or target.affiliate_creator_ref is None)
        )

    stage.wait(arrived, WEBHOOK_TIMEOUT, "the stores' fulfilment and refund webhooks")
    return (
        f"{fulfilled} Shopify orders fulfilled, {shipped} Walmart orders shipped, "
        f"1 unit of order {target.public_id} refunded"
    )


def _approvable_pending(stage: Stage) -> int:
    """Shopify entries still pending that the scheduler will approve once their hold is over: all but those
    of an order cancelled or refused, or of a line refunded in full (its entries sum to nothing)."""
    with stage.rt.db.session() as session:
        rows = session.execute(
            select(
                CommissionEntry.order_line_id,
                CommissionEntry.attribution_ref,
                CommissionEntry.state,
                CommissionEntry.amount_minor,
                Order.status,
            )
            .join(Order, Order.id == CommissionEntry.order_id)
            .where(CommissionEntry.merchant_id == stage.merchants["shopify"])
        ).tuples()
        groups: dict[tuple[int, str], list[tuple[str, int, str]]] = {}
        for line_id, ref, state, amount, status in rows:
            groups.setdefault((line_id, ref), []).append((state, amount, status))
    waiting = 0
    for entries in groups.values():
        keeps_some = sum(amount for _, amount, _ in entries) != 0
        if keeps_some and entries[0][2] not in ("cancelled", "rejected"):
            waiting += sum(1 for state, _, _ in entries if state == "pending")
    return waiting


def _approved(stage: Stage) -> dict[str, int] | None:
    """Approved commission per creator, once nothing approvable is pending any more."""
    if _approvable_pending(stage):
        return None
    with stage.rt.db.session() as session:
        rows = session.execute(
            select(CommissionEntry.creator_ref, func.sum(CommissionEntry.amount_minor))
            .where(CommissionEntry.state == "approved", CommissionEntry.currency == "USD")
            .group_by(CommissionEntry.creator_ref)
        ).tuples()
        return {creator: int(total) for creator, total in rows.all()}


def approve_and_pay(stage: Stage) -> str:
    """The scheduler approves the Shopify program's commission once its hold is over (the Walmart program's
    stays pending for 30 days); the platform then reports paying the creator with the most approved."""
    approved: dict[str, int] = stage.wait(
        lambda: _approved(stage), APPROVAL_TIMEOUT, "the approval of the commission whose hold is over"
    )
    payable = {creator: total for creator, total in approved.items() if total > 0}
    if not payable:
        raise LookupError("no approved commission to pay")
    creator = max(payable, key=lambda ref: (payable[ref], ref))
    payout = stage.platform.post(
        "/v1/payouts",
        {
            "platform_payout_id": f"payout-{creator}-1",
            "creator_ref": creator,
            "currency": "USD",
            "approved_up_to": datetime.now(UTC).isoformat(),
        },
    )
    return (
        f"approved for {len(approved)} creators; {creator} paid {payout['total_minor'] / 100:,.2f} USD "
        f"({payout['entry_count']} entries)"
    )
