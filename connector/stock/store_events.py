"""Store events applied to stored state: newer wins, duplicates are harmless, and changes become domain events.

`apply` takes the parsed events of many inbound deliveries of one merchant and applies them in one
transaction, in order of the store's own time (the drain calls it for each merchant of a batch in one
transaction; `connector.stock.inventory_events.batched` then reads and writes the levels of all of them at once). A change older than (or as old as) what is stored is
skipped, so a late or repeated delivery never overwrites newer state. Bursts for one variant are
coalesced: one `inventory.updated` per variant and batch, from the stock before the batch to the stock after.

Inventory. An event naming a store inventory item is resolved to its variant through
`Variant.inventory_item_ref` (indexed per merchant), so parsing a delivery never calls the store. The
location rule follows the merchant's `location_ref`:
- a merchant with a location takes only levels of that location; others are skipped, noted;
- a merchant without one sells the sum over every location (the catalog sync stores that sum at the
  home location `default`), but a store's webhook names one location's figure, and the sum of the others is
  nowhere in the database. So the total is read from the store when the event is applied: once per batch,
  for the items whose events survived the stale guard, through the adapter's optional `InventoryTotals`
  port that the drain hands in (`stock`). The figure read is the store's stock at the moment of reading,
  newer than every event in the batch, and is stored with the newest event's time, so the stale guard
  holds. Without that port the level is kept at its own location and changes no sellable stock.

Orders: a store's fulfilment, cancellation or refund moves the order's status and publishes its event once;
each refund the store names by its id is published even on an order already refunded, so every partial refund
reaches the commission ledger (which adds nothing for a refund it has seen).

Uninstall purges the store's tokens, stops the merchant (status `uninstalled`, queued syncs cancelled) and
keeps only the credentials the adapter names as needed to verify later deliveries (app secrets, for the
compliance deliveries that follow an uninstall); that needs the `secrets` box, without it everything is
purged. Privacy events (data request, customer and shop redaction, `connector.merchants.privacy`) apply even after
an uninstall; a redaction also has the redacted orders' holds forget their buyer (`connector.stock.holds`, the
one writer of reservation rows, which privacy, a layer below stock, may not call).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.catalog import syncs
from connector.domain import event_types, registry
from connector.domain.errors import PermanentError
from connector.domain.ports import Capability, InventoryTotals
from connector.domain.store_events import PRIVACY_KINDS, StoreEvent, StoreEventKind
from connector.infra import outbox
from connector.infra.crypto import SecretBox
from connector.infra.models import Merchant, Order, SyncRun
from connector.infra.models import Product as ProductRow
from connector.infra.models import Variant as VariantRow
from connector.merchants import privacy
from connector.stock import holds
from connector.stock.inventory_events import (
    DEFAULT_LOCATION as DEFAULT_LOCATION,
)
from connector.stock.inventory_events import (
    DELETED,
    PROCESSED,
    SKIPPED,
    apply_inventory,
    flush_batch,
)
from connector.stock.inventory_events import stale as _stale

logger = logging.getLogger(__name__)

ORDER_EVENTS = {
    StoreEventKind.ORDER_FULFILLED: ("fulfilled", event_types.ORDER_FULFILLED),
    StoreEventKind.ORDER_CANCELLED: ("cancelled", event_types.ORDER_CANCELLED),
    StoreEventKind.ORDER_REFUNDED: ("refunded", event_types.ORDER_REFUNDED),
}
FINAL_ORDER_STATES = frozenset({"cancelled", "rejected"})
_AFTER_UNINSTALL = PRIVACY_KINDS | {StoreEventKind.APP_UNINSTALLED}
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class Applied:
    """What `apply` did: per delivery a status and a note, plus the sync runs to queue after commit."""

    results: dict[int, tuple[str, str]] = field(default_factory=dict)
    runs: list[SyncRun] = field(default_factory=list)
    events_published: int = 0
    read_store_orders: bool = False
    """The store says orders were placed there: the drain has its orders read again after commit."""
    bulk_finished: list[str] = field(default_factory=list)
    """Bulk operations the store says ended: the drain signals the syncs waiting on them after commit."""

    def note(self, delivery: int, status: str, text: str) -> None:
        # A delivery with several events is processed when any of them changed something.
        previous = self.results.get(delivery)
        if previous is None or (previous[0] == SKIPPED and status == PROCESSED):
            self.results[delivery] = (status, text)
        elif previous[0] == status and text not in previous[1].split("; "):
            self.results[delivery] = (status, f"{previous[1]}; {text}")


def apply(
    session: Session,
    merchant: Merchant,
    deliveries: Sequence[tuple[int, Sequence[StoreEvent]]],
    *,
    stock: InventoryTotals | None = None,
    secrets: SecretBox | None = None,
) -> Applied:
    """Apply the events of `deliveries` ((delivery id, events) pairs) for `merchant` in `session`.

    `stock` reads summed stock from the store for merchants that sell the sum of their locations; `secrets`
    lets an uninstall keep the credentials later deliveries are verified with."""
    done = Applied()
    ordered: list[tuple[datetime, int, int, StoreEvent]] = []
    for position, (delivery, found) in enumerate(deliveries):
        if not found:
            done.note(delivery, SKIPPED, "no events")
        for event in found:
            ordered.append((event.occurred_at or _EPOCH, position, delivery, event))
    ordered.sort(key=lambda item: (item[0], item[1]))
    if merchant.status == "uninstalled":
        for _, _, delivery, event in ordered:
            if event.kind not in _AFTER_UNINSTALL:
                done.note(delivery, SKIPPED, "merchant uninstalled")
        ordered = [item for item in ordered if item[3].kind in _AFTER_UNINSTALL]
    published: list[outbox.DomainEvent] = []
    inventory = [(d, e) for _, _, d, e in ordered if e.kind is StoreEventKind.INVENTORY_CHANGED]
    if inventory:
        published += apply_inventory(session, merchant, inventory, done, stock)
        if len(inventory) < len(ordered):  # what follows reads the levels as this batch leaves them
            flush_batch(session)
    for _, _, delivery, event in ordered:
        if event.kind is StoreEventKind.PRODUCT_DELETED:
            published += _product_deleted(session, merchant, delivery, event, done)
        elif event.kind is StoreEventKind.PRODUCT_CHANGED:
            _product_changed(session, merchant, delivery, event, done)
        elif event.kind in ORDER_EVENTS:
            published += _order(session, merchant, delivery, event, done)
        elif event.kind is StoreEventKind.APP_UNINSTALLED:
            published += _uninstalled(session, merchant, delivery, event, done, secrets)
        elif event.kind in PRIVACY_KINDS:
            _privacy(session, merchant, delivery, event, done)
        elif event.kind is StoreEventKind.STORE_ORDER_PLACED:
            done.read_store_orders = merchant.status == "installed"
            note = "store orders read again" if done.read_store_orders else f"merchant is {merchant.status}"
            done.note(delivery, PROCESSED if done.read_store_orders else SKIPPED, note)
        elif event.kind is StoreEventKind.BULK_OPERATION_FINISHED:
            done.bulk_finished.append(event.external_id)
            done.note(delivery, PROCESSED, f"bulk operation {event.data.get('status') or 'ended'}")
    done.events_published = outbox.publish(session, published)
    return done


def _product_deleted(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> list[outbox.DomainEvent]:
    product = session.scalars(
        select(ProductRow).where(
            ProductRow.merchant_id == merchant.id, ProductRow.external_id == event.external_id
        )
    ).first()
    if product is None:
        done.note(delivery, SKIPPED, f"unknown product {event.external_id}")
        return []
    if product.status == DELETED:
        done.note(delivery, SKIPPED, f"product {event.external_id} already deleted")
        return []
    if _stale(event.occurred_at, product.source_updated_at):
        done.note(delivery, SKIPPED, f"stale: product {event.external_id} changed later")
        return []
    now = datetime.now(UTC)
    product.status = DELETED
    product.content_hash = DELETED
    product.source_updated_at = event.occurred_at or product.source_updated_at
    session.execute(
        update(VariantRow)
        .where(VariantRow.product_id == product.id)
        .values(status=DELETED, content_hash=DELETED, updated_at=now)
    )
    done.note(delivery, PROCESSED, "product deleted")
    return [
        outbox.DomainEvent(
            event_types.PRODUCT_DELETED,
            merchant.id,
            {"product_id": product.id, "external_id": product.external_id},
            now,
        )
    ]


def _product_changed(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> None:
    stored = session.execute(
        select(ProductRow.source_updated_at).where(
            ProductRow.merchant_id == merchant.id, ProductRow.external_id == event.external_id
        )
    ).first()
    if stored is not None and _stale(event.occurred_at, stored[0]):
        done.note(delivery, SKIPPED, f"stale: product {event.external_id} is already newer")
        return
    if merchant.status != "installed":
        done.note(delivery, SKIPPED, f"merchant is {merchant.status}: no sync")
        return
    # Deliveries name what changed; the store is read again for the product (one run for a whole burst).
    run, created = syncs.record_sync(session, merchant.id, kind="catalog", full=_full_only(merchant))
    if created:
        done.runs.append(run)
    done.note(delivery, PROCESSED, f"catalog sync {run.id}")


def _full_only(merchant: Merchant) -> bool:
    try:
        capabilities = registry.adapter_class(merchant.kind).capabilities
    except Exception:  # an adapter gone from the installation: a full read is the safe choice
        return True
    return Capability.CATALOG_INCREMENTAL not in capabilities


def _order(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> list[outbox.DomainEvent]:
    status, event_type = ORDER_EVENTS[event.kind]
    order = session.scalars(
        select(Order).where(Order.merchant_id == merchant.id, Order.store_order_ref == event.external_id)
    ).first()
    if order is None:
        done.note(delivery, SKIPPED, f"order {event.external_id} was not placed through Storelink")
        return []
    another_refund = event.kind is StoreEventKind.ORDER_REFUNDED and bool(event.data.get("refund_id"))
    if (order.status == status and not another_refund) or order.status in FINAL_ORDER_STATES:
        done.note(delivery, SKIPPED, f"order {order.public_id} is already {order.status}")
        return []
    order.status = status
    done.note(delivery, PROCESSED, f"order {order.public_id} {status}")
    return [
        outbox.DomainEvent(
            event_type,
            merchant.id,
            {"order_id": order.public_id, "store_order_ref": order.store_order_ref, **_plain(event.data)},
            event.occurred_at or datetime.now(UTC),
        )
    ]


def _uninstalled(
    session: Session,
    merchant: Merchant,
    delivery: int,
    event: StoreEvent,
    done: Applied,
    secrets: SecretBox | None,
) -> list[outbox.DomainEvent]:
    if merchant.status == "uninstalled":
        done.note(delivery, SKIPPED, "merchant already uninstalled")
        return []
    retain = [name for name in _names(event.data.get("retain_credentials"))]
    kept: dict[str, str] = {}
    if retain and secrets is not None and merchant.credentials_encrypted:
        try:
            current = secrets.decrypt(merchant.credentials_encrypted)
        except PermanentError:
            current = {}
        kept = {name: current[name] for name in retain if current.get(name)}
    # The store revoked the tokens: nothing may use them again. App secrets stay to verify what follows.
    merchant.credentials_encrypted = secrets.encrypt(kept) if kept and secrets is not None else None
    merchant.status = "uninstalled"
    merchant.problem = "the store uninstalled the app"
    cancelled = (
        session.connection()
        .execute(
            update(SyncRun)
            .where(SyncRun.merchant_id == merchant.id, SyncRun.status == "queued")
            .values(
                status="failed",
                error="cancelled: the store uninstalled the app",
                finished_at=datetime.now(UTC),
            )
        )
        .rowcount
    )
    done.note(delivery, PROCESSED, "merchant uninstalled, tokens purged")
    logger.warning(
        "merchant uninstalled by the store; tokens purged",
        extra={
            "merchant_id": merchant.id,
            "store_ref": merchant.store_ref,
            "kept_credentials": sorted(kept),
            "syncs_cancelled": cancelled,
        },
    )
    return [
        outbox.DomainEvent(
            event_types.MERCHANT_UNINSTALLED,
            merchant.id,
            {"merchant_id": merchant.id},
            event.occurred_at or datetime.now(UTC),
        )
    ]


def _names(value: object) -> list[str]:
    return [name for name in value if isinstance(name, str)] if isinstance(value, list | tuple) else []


def _customer(event: StoreEvent) -> privacy.Customer:
    email, phone = event.data.get("email"), event.data.get("phone")
    return privacy.Customer(
        email=email if isinstance(email, str) else None,
        phone=phone if isinstance(phone, str) else None,
        order_refs=frozenset(_names(event.data.get("order_refs"))),
    )


def _privacy(session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied) -> None:
    """A data request is answered with a record of what is held; a redaction erases it. Logged without the
    personal data itself (order ids and field names only)."""
    context: dict[str, Any] = {
        "merchant_id": merchant.id,
        "inbound_event_id": delivery,
        "kind": str(event.kind),
    }
    if event.kind is StoreEventKind.SHOP_REDACTED:
        found = privacy.redact_shop(session, merchant.id)
        holds.forget_merchant_buyers(session, merchant.id)
        note = f"shop data redacted: {len(found.orders)} order(s)"
        logger.warning("shop customer data redacted", extra={**context, "orders": len(found.orders)})
        done.note(delivery, PROCESSED, note)
        return
    customer = _customer(event)
    customer_ref = event.data.get("customer_ref")
    context["customer_ref"] = customer_ref if isinstance(customer_ref, str) else None
    if event.kind is StoreEventKind.CUSTOMER_DATA_REQUESTED:
        found = privacy.find_customer(session, merchant.id, customer)
        request_ref = event.data.get("request_ref")
        fields = sorted(found.fields)
        note = (
            f"customer data held: {len(found.orders)} order(s) {', '.join(found.orders[:20])}; "
            f"fields {', '.join(fields) or 'none'}"
        )
        logger.info(
            "customer data request",
            extra={**context, "request_ref": request_ref, "orders": found.orders, "fields": fields},
        )
    else:
        found = privacy.redact_customer(session, merchant.id, customer)
        holds.forget_buyers(session, found.order_ids)
        note = f"customer data redacted: {len(found.orders)} order(s) {', '.join(found.orders[:20])}"
        logger.warning("customer data redacted", extra={**context, "orders": found.orders})
    done.note(
        delivery, PROCESSED if found.orders else SKIPPED, note if found.orders else "no customer data held"
    )


def _plain(data: dict[str, object]) -> dict[str, Any]:
    return {
        k: v for k, v in data.items() if isinstance(v, str | int | float | bool | list | dict) or v is None
    }
