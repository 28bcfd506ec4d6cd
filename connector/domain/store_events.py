"""Store events: what an inbound webhook or a poll tells the core, already parsed by an adapter.

What each kind carries (`external_id`, `data`):

- PRODUCT_CHANGED / PRODUCT_DELETED: the product's external id; the core reads the store again for a change.
- INVENTORY_CHANGED: stock of one item at one location, as the store counts it.
  ``data["inventory_item_ref"]`` names the store's inventory item (resolved through the variant's stored
  ``inventory_item_ref``); without it, ``external_id`` is the variant's external id. ``data["available"]``
  is the store's figure, or None when the store does not track stock for the item (nothing is written:
  the variant's next catalog read decides whether it is tracked). ``data["location_ref"]`` is the store's
  location; absent means the merchant's home location. Older adapters may send ``quantity``/``location``
  under those names instead.
- ORDER_FULFILLED / ORDER_CANCELLED / ORDER_REFUNDED: the store's order ref, with details in ``data``.
- APP_UNINSTALLED: the store ref. ``data["retain_credentials"]`` lists credential names that are not
  access tokens and that later deliveries still need to be verified (app secrets); every other credential
  is purged.
- CUSTOMER_DATA_REQUESTED / CUSTOMER_REDACTED: a customer's data asked for, or to be erased. ``data``:
  ``customer_ref``, ``email``, ``phone`` (each may be None) and ``order_refs`` (the store's order refs
  named by the request); ``request_ref`` for a data request.
- SHOP_REDACTED: the store ref; every customer's personal data held for the merchant is to be erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class StoreEventKind(StrEnum):
    PRODUCT_CHANGED = "product_changed"
    PRODUCT_DELETED = "product_deleted"
    INVENTORY_CHANGED = "inventory_changed"
    ORDER_FULFILLED = "order_fulfilled"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REFUNDED = "order_refunded"
    APP_UNINSTALLED = "app_uninstalled"
    CUSTOMER_DATA_REQUESTED = "customer_data_requested"
    CUSTOMER_REDACTED = "customer_redacted"
    SHOP_REDACTED = "shop_redacted"
    BULK_OPERATION_FINISHED = "bulk_operation_finished"
    STORE_ORDER_PLACED = "store_order_placed"
    """An order placed in the store itself (not pushed by Storelink) changed its stock: the store's orders are
    read again (`connector.stock.store_orders.poll_orders`), which takes them off the platform's stock once each."""


PRIVACY_KINDS = frozenset(
    {StoreEventKind.CUSTOMER_DATA_REQUESTED, StoreEventKind.CUSTOMER_REDACTED, StoreEventKind.SHOP_REDACTED}
)
"""Kinds a store sends for personal data; they apply even after the merchant uninstalled."""


@dataclass(frozen=True, slots=True)
class StoreEvent:
    kind: StoreEventKind
    external_id: str
    occurred_at: datetime | None = None
    data: dict[str, object] = field(default_factory=dict)
