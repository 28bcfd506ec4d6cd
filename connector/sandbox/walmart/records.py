"""The records of an emulated Walmart seller account (items, per-node stock, feeds, MCS fulfilment orders and
lines, sales channels, notification subscriptions), the notification event types, and the wire helpers
(epoch milliseconds, ISO timestamps, quantity objects, UPC check digits) they are shown with."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

Listener = Callable[[str, dict[str, Any]], None]

MART = "WALMART_US"
UNIT = "EACH"
SELLER_ORDER_ID = re.compile(r"[A-Za-z0-9\s]+")
MAX_SELLER_ORDER_ID = 18
MAX_SELLER_LINE_ID = 6
FEED_TYPES = ("inventory", "MP_INVENTORY")
SHELVES = (
    ("Home Page", "Clothing", "Men", "Mens Coats & Jackets"),
    ("Home Page", "Home", "Kitchen & Dining", "Cookware"),
    ("Home Page", "Electronics", "Audio", "Headphones"),
    ("Home Page", "Toys", "Building Sets"),
)
PRODUCT_TYPES = ("Outerwear Coats, Jackets & Vests", "Cookware Sets", "Headphones", "Building Sets")


MCS_EVENT_STATUS = {
    "RECEIVED": "Created",
    "ACCEPTED": "Acknowledged",
    "PROCESSING": "Acknowledged",
    "SHIPPED": "Shipped",
    "CANCELLED": "Canceled",
    "REJECTED": "Rejected",
}


def epoch_ms(seconds: float) -> int:
    return int(seconds * 1000)


def iso_ms(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(seconds * 1000) % 1000:03d}Z"
    )


def quantity(amount: int) -> dict[str, Any]:
    """The inventory APIs' quantity object: `{"unit": "EACH", "amount": N}` (a number)."""
    return {"unit": UNIT, "amount": amount}


def upc_check_digit(body: str) -> str:
    odd = sum(int(d) for d in body[0::2])
    even = sum(int(d) for d in body[1::2])
    return str((10 - (odd * 3 + even) % 10) % 10)


@dataclass(slots=True)
class Item:
    """A catalog item as `GET /v3/items` shows it."""

    sku: str
    product_name: str
    price: float
    upc: str = ""
    wpid: str = ""
    gtin: str = ""
    shelf: tuple[str, ...] = ()
    product_type: str = ""
    currency: str = "USD"
    published_status: str = "PUBLISHED"
    lifecycle_status: str = "ACTIVE"
    unpublished_reasons: tuple[str, ...] = ()
    variant_group_id: str | None = None
    item_id: str = ""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "mart": MART,
            "sku": self.sku,
            "wpid": self.wpid,
            "upc": self.upc,
            "gtin": self.gtin,
            "productName": self.product_name,
            "shelf": orjson.dumps(list(self.shelf)).decode(),
            "productType": self.product_type,
            "price": {"currency": self.currency, "amount": self.price},
            "publishedStatus": self.published_status,
        }
        if self.published_status != "PUBLISHED":
            document["unpublishedReasons"] = {"reason": list(self.unpublished_reasons)}
        document["lifecycleStatus"] = self.lifecycle_status
        if self.variant_group_id:
            document["variantGroupId"] = self.variant_group_id
        return document


@dataclass(slots=True)
class NodeStock:
    """One SKU's stock at one ship node: what the seller set and what Walmart holds for open orders."""

    input_qty: int = 0
    reserved: int = 0

    @property
    def avail(self) -> int:
        return max(0, self.input_qty - self.reserved)


@dataclass(slots=True)
class Feed:
    feed_id: str
    feed_type: str
    submitted_at: float
    due_at: float
    ship_node: str | None
    records: list[dict[str, Any]]
    status: str = "RECEIVED"
    results: list[dict[str, Any]] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0


@dataclass(slots=True)
class FulfilmentLine:
    seller_line_id: str
    sku: str
    qty: int
    shipping_method: str
    status: str = "RECEIVED"
    status_description: str = "RECEIVED"
    cancelled_qty: int = 0
    shipped_qty: int = 0
    reserved_at: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class FulfilmentOrder:
    """A Multichannel order created with `POST /v3/fulfillment/orders-fulfillments`."""

    seller_order_id: str
    request_id: str
    order_channel_id: str
    order_placed_time: str
    created_at: float
    due_at: float
    lines: list[FulfilmentLine]
    customer: dict[str, Any]
    shipping_to: dict[str, Any]
    status: str = "RECEIVED"
    shipments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Channel:
    order_channel_id: str
    order_channel_name: str
    return_address: dict[str, Any] = field(default_factory=dict)
    carrier_preference: str = ""
    active: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "orderChannelId": self.order_channel_id,
            "orderChannelName": self.order_channel_name,
            "returnAddress": self.return_address,
            "carrierPreference": self.carrier_preference,
            "active": self.active,
        }


@dataclass(slots=True)
class Subscription:
    """A notification subscription (`POST /v3/webhooks/subscriptions`); it fires only while ACTIVE."""

    subscription_id: str
    event_type: str
    event_version: str
    resource_name: str
    event_url: str
    status: str
    auth_details: dict[str, Any]
    headers: dict[str, str]

    def to_json(self, partner_id: str) -> dict[str, Any]:
        auth = {k: v for k, v in self.auth_details.items() if k not in ("password", "clientSecret")}
        return {
            "subscriptionId": self.subscription_id,
            "partnerId": partner_id,
            "eventType": self.event_type,
            "eventVersion": self.event_version,
            "resourceName": self.resource_name,
            "eventUrl": self.event_url,
            "status": self.status,
            "authDetails": auth,
            "headers": dict(self.headers),
        }


EVENT_TYPES: dict[str, str] = {
    "PO_CREATED": "ORDER",
    "PO_LINE_AUTOCANCELLED": "ORDER",
    "ORDER_UPDATES": "ORDER",
    "OFFER_UNPUBLISHED": "ITEM",
    "OFFER_PUBLISHED": "ITEM",
    "BUY_BOX_CHANGED": "PRICE",
    "INVENTORY_OOS": "INVENTORY",
    "REPORT_STATUS": "REPORTS",
    "SELLER_PERFORMANCE_NOTIFICATIONS": "FEEDS",
    "ORDER_STATUS_UPDATE": "ORDER",
    "ORDER_SHIPMENT_UPDATE": "ORDER",
    "MCS_RETURN_ORDER_STATUS_UPDATE": "ORDER",
}
"""eventType -> resourceName of `GET /v3/webhooks/eventTypes` (all version V1). The emulator sends PO_CREATED,
INVENTORY_OOS, OFFER_PUBLISHED/OFFER_UNPUBLISHED, and for MCS orders ORDER_STATUS_UPDATE and
ORDER_SHIPMENT_UPDATE; the others can be subscribed to and tested."""
