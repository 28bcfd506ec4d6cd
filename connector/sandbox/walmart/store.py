"""One emulated Walmart seller's state: catalog items, per-ship-node inventory, bulk inventory feeds,
Multichannel (MCS) fulfilment orders and sales channels, Walmart-originated purchase orders, notification
subscriptions, and counters tests read. Every method is thread-safe; asynchronous work (feeds, MCS orders)
becomes due on the store's clock and is applied by `process_due()`; changes that Walmart announces are passed
to `listeners` as (eventType, payload)."""

from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.orders import LineStatus, Order, OrderLine, apply_cancellation, apply_shipment

logger = logging.getLogger(__name__)

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


class Store:
    """One seller's state on a clock (`time.time` unless given, so tests can move time)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        partner_id: str = "10000682332",
        ship_nodes: Sequence[str] = ("1000005050", "1000005051"),
        feed_delay: float = 0.5,
        mcs_delay: float = 0.5,
        mcs_enrolled: bool = True,
        seed: int = 0,
    ):
        if not ship_nodes:
            raise ValueError("at least one ship node is needed")
        self.clock = clock
        self.partner_id = partner_id
        self.ship_nodes: list[str] = list(ship_nodes)
        self.feed_delay = feed_delay
        self.mcs_delay = mcs_delay
        self.mcs_enrolled = mcs_enrolled
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self.requests: Counter[str] = Counter()
        self.items: dict[str, Item] = {}
        self._item_order: list[str] = []
        self.stock: dict[str, dict[str, NodeStock]] = {}
        self.feeds: dict[str, Feed] = {}
        self._pending_feeds: list[Feed] = []
        self._pending_fulfilments: list[FulfilmentOrder] = []
        self.fulfilments: dict[str, FulfilmentOrder] = {}
        self.fulfilment_requests: dict[str, str] = {}
        self.fulfilment_attempts = 0
        self.channels: dict[str, Channel] = {}
        self.orders: dict[str, Order] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._random = random.Random(seed)
        self._po_numbers = itertools.count(1_796_277_083_022)
        self._customer_numbers = itertools.count(5_281_956_426_648)

    @property
    def default_ship_node(self) -> str:
        return self.ship_nodes[0]

    @property
    def fulfilment_orders_created(self) -> int:
        """How many MCS orders exist (accepted creates; duplicates and invalid payloads are not counted)."""
        with self.lock:
            return len(self.fulfilments)

    # --- events ----------------------------------------------------------------------------------------

    def _emit(self, event_type: str, payload: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event_type, payload)
            except Exception:
                logger.exception("walmart emulator listener failed", extra={"event_type": event_type})

    # --- catalog ---------------------------------------------------------------------------------------

    def add_item(
        self,
        sku: str,
        *,
        product_name: str | None = None,
        price: float = 19.99,
        upc: str = "",
        quantity_by_node: dict[str, int] | None = None,
        published_status: str = "PUBLISHED",
        lifecycle_status: str = "ACTIVE",
        shelf: Sequence[str] = SHELVES[0],
        product_type: str = PRODUCT_TYPES[0],
    ) -> Item:
        """Add (or replace) one item with stock at the given nodes (every other node gets 0)."""
        with self.lock:
            index = len(self._item_order)
            item = Item(
                sku=sku,
                product_name=product_name or f"Item {sku}",
                price=price,
                upc=upc,
                gtin=f"00{upc}" if upc else "",
                wpid=f"{uuid.UUID(int=self._random.getrandbits(128)).hex[:12].upper()}",
                item_id=str(100_000_000 + index),
                shelf=tuple(shelf),
                product_type=product_type,
                published_status=published_status,
                lifecycle_status=lifecycle_status,
                unpublished_reasons=()
                if published_status == "PUBLISHED"
                else ("No shipping information was set up for this item.",),
            )
            if sku not in self.items:
                self._item_order.append(sku)
            self.items[sku] = item
            wanted = quantity_by_node or {}
            self.stock[sku] = {node: NodeStock(input_qty=wanted.get(node, 0)) for node in self.ship_nodes}
            return item

    def seed_catalog(
        self,
        n_items: int,
        *,
        sku_prefix: str = "WM-SKU-",
        quantity: int | Callable[[int], int] = 10,
        empty_upc_every: int = 5,
        unpublished_every: int = 0,
        price: Callable[[int], float] | None = None,
    ) -> list[Item]:
        """Create `n_items` items `{sku_prefix}{i:06d}` with prices, UPCs (every `empty_upc_every`-th one
        empty, 0 for none), and `quantity` (or `quantity(i)`) units at the default ship node."""
        items: list[Item] = []
        with self.lock:
            for i in range(n_items):
                upc = ""
                if not empty_upc_every or i % empty_upc_every != empty_upc_every - 1:
                    body = f"{88_685_000_000 + len(self._item_order):011d}"
                    upc = body + upc_check_digit(body)
                units = quantity(i) if callable(quantity) else quantity
                unpublished = bool(unpublished_every) and i % unpublished_every == unpublished_every - 1
                items.append(
                    self.add_item(
                        f"{sku_prefix}{i:06d}",
                        product_name=f"Sandbox product {i}",
                        price=price(i) if price else round(5 + (i * 37 % 9500) / 100, 2),
                        upc=upc,
                        quantity_by_node={self.default_ship_node: units},
                        published_status="UNPUBLISHED" if unpublished else "PUBLISHED",
                        shelf=SHELVES[i % len(SHELVES)],
                        product_type=PRODUCT_TYPES[i % len(PRODUCT_TYPES)],
                    )
                )
        return items

    def item(self, sku: str) -> Item | None:
        with self.lock:
            return self.items.get(sku)

    def set_published(self, sku: str, published: bool) -> None:
        """Publish or unpublish an item, announcing OFFER_PUBLISHED / OFFER_UNPUBLISHED."""
        with self.lock:
            item = self._require_item(sku)
            item.published_status = "PUBLISHED" if published else "UNPUBLISHED"
            item.unpublished_reasons = () if published else ("Item is unpublished by the seller.",)
            payload: dict[str, Any] = {
                "partnerId": self.partner_id,
                "itemId": item.item_id,
                "sku": sku,
                "itemName": item.product_name,
                "publishStatus": item.published_status,
                "lifecycleStatus": item.lifecycle_status,
            }
            if not published:
                payload["statusChangeReasons"] = {"reasons": list(item.unpublished_reasons)}
        self._emit("OFFER_PUBLISHED" if published else "OFFER_UNPUBLISHED", payload)

    def items_page(
        self,
        position: int,
        limit: int,
        *,
        sku: str | None = None,
        lifecycle_status: str | None = None,
        published_status: str | None = None,
    ) -> tuple[list[dict[str, Any]], int | None, int]:
        """Up to `limit` matching items from `position` in catalog order: (items, next position or None at
        the end, total matching)."""

        def matches(item: Item) -> bool:
            return (
                (sku is None or item.sku == sku)
                and (lifecycle_status is None or item.lifecycle_status == lifecycle_status)
                and (published_status is None or item.published_status == published_status)
            )

        with self.lock:
            order = self._item_order
            filtered = sku is not None or lifecycle_status is not None or published_status is not None
            if not filtered:
                chosen = [self.items[s] for s in order[position : position + limit]]
                after = position + len(chosen)
                total = len(order)
            else:
                chosen = []
                after = position
                while after < len(order) and len(chosen) < limit:
                    candidate = self.items[order[after]]
                    after += 1
                    if matches(candidate):
                        chosen.append(candidate)
                total = sum(1 for s in order if matches(self.items[s]))
                while after < len(order) and not matches(self.items[order[after]]):
                    after += 1
            following = after if after < len(order) else None
            return [item.to_json() for item in chosen], following, total

    # --- inventory -------------------------------------------------------------------------------------

    def _require_item(self, sku: str) -> Item:
        item = self.items.get(sku)
        if item is None:
            raise WalmartError.not_found(f"Item with sku {sku} not found", field="sku")
        return item

    def _require_node(self, ship_node: str | None) -> str:
        node = ship_node or self.default_ship_node
        if node not in self.ship_nodes:
            raise WalmartError.bad_param("shipNode", f"Invalid shipNode {node}")
        return node

    def total_available(self, sku: str) -> int:
        with self.lock:
            return sum(s.avail for s in self.stock.get(sku, {}).values())

    def nodes(self, sku: str) -> dict[str, NodeStock]:
        """A copy of one SKU's stock per ship node."""
        with self.lock:
            self._require_item(sku)
            return {node: NodeStock(s.input_qty, s.reserved) for node, s in self.stock[sku].items()}

    def get_quantity(self, sku: str, ship_node: str | None = None) -> int:
        """The quantity the seller set at one node (the default node unless named)."""
        with self.lock:
            self._require_item(sku)
            return self.stock[sku][self._require_node(ship_node)].input_qty

    def set_quantity(self, sku: str, amount: int, ship_node: str | None = None) -> None:
        """Set the seller's quantity at one node; announces INVENTORY_OOS when the SKU runs out."""
        with self.lock:
            self._require_item(sku)
            node = self._require_node(ship_node)
            before = self.total_available(sku)
            self.stock[sku][node].input_qty = amount
            self._after_stock_change(sku, before)

    def _after_stock_change(self, sku: str, before: int) -> None:
        after = self.total_available(sku)
        if before > 0 and after == 0:
            item = self.items[sku]
            payload = {
                "partnerId": self.partner_id,
                "itemId": item.item_id,
                "sku": sku,
                "productName": item.product_name,
                "category": item.product_type,
                "shipNodes": [
                    {"availToSellQty": s.avail, "shipNode": node, "shipNodeName": f"Node {node}"}
                    for node, s in self.stock[sku].items()
                ],
            }
            self._emit("INVENTORY_OOS", payload)

    def node_json(self, sku: str, ship_node: str | None = None) -> dict[str, Any]:
        """`GET /v3/inventories/{sku}`: every node, or one."""
        with self.lock:
            self._require_item(sku)
            wanted = [self._require_node(ship_node)] if ship_node else list(self.stock[sku])
            return {
                "sku": sku,
                "nodes": [
                    {
                        "shipNode": node,
                        "inputQty": quantity(self.stock[sku][node].input_qty),
                        "availToSellQty": quantity(self.stock[sku][node].avail),
                        "reservedQty": quantity(self.stock[sku][node].reserved),
                    }
                    for node in wanted
                ],
            }

    def inventories_page(self, position: int, limit: int) -> tuple[list[dict[str, Any]], int | None, int]:
        with self.lock:
            skus = self._item_order[position : position + limit]
            after = position + len(skus)
            return (
                [self.node_json(sku) for sku in skus],
                after if after < len(self._item_order) else None,
                len(self._item_order),
            )

    # --- feeds -----------------------------------------------------------------------------------------

    def feeds_in_last_hour(self, feed_type: str) -> list[float]:
        with self.lock:
            horizon = self.clock() - 3600
            return sorted(
                f.submitted_at
                for f in self.feeds.values()
                if f.feed_type == feed_type and f.submitted_at > horizon
            )

    def submit_feed(self, feed_type: str, records: list[dict[str, Any]], ship_node: str | None) -> Feed:
        with self.lock:
            now = self.clock()
            feed_id = f"{uuid.UUID(int=self._random.getrandbits(128)).hex.upper()}@AQMBAQA"
            feed = Feed(feed_id, feed_type, now, now + self.feed_delay, ship_node, records)
            self.feeds[feed_id] = feed
            self._pending_feeds.append(feed)
            return feed

    def feed(self, feed_id: str) -> Feed | None:
        with self.lock:
            self.process_due()
            return self.feeds.get(feed_id)

    def _apply_feed(self, feed: Feed) -> None:
        for index, record in enumerate(feed.records):
            sku = str(record.get("sku", ""))
            error: tuple[str, str, str] | None = None
            targets: list[tuple[str, Any]] = []
            if feed.feed_type == "inventory":
                targets = [(feed.ship_node or self.default_ship_node, record.get("quantity"))]
            else:
                nodes = record.get("shipNodes")
                if not isinstance(nodes, list) or not nodes:
                    error = ("DATA_ERROR", "shipNodes", "shipNodes is required")
                else:
                    targets = [
                        (
                            str(n.get("shipNode", "")) if isinstance(n, dict) else "",
                            n.get("quantity") if isinstance(n, dict) else None,
                        )
                        for n in nodes
                    ]
            if error is None and sku not in self.items:
                error = ("DATA_ERROR", "sku", f"Item with sku {sku} not found")
            parsed: list[tuple[str, int]] = []
            if error is None:
                for node, qty in targets:
                    amount = qty.get("amount") if isinstance(qty, dict) else None
                    if node not in self.ship_nodes:
                        error = ("DATA_ERROR", "shipNode", f"Invalid shipNode {node}")
                        break
                    if not isinstance(qty, dict) or qty.get("unit") != UNIT:
                        error = ("DATA_ERROR", "quantity.unit", "quantity.unit must be EACH")
                        break
                    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                        error = (
                            "DATA_ERROR",
                            "quantity.amount",
                            "quantity.amount must be a non-negative integer",
                        )
                        break
                    parsed.append((node, amount))
            if error is None:
                before = self.total_available(sku)
                for node, amount in parsed:
                    self.stock[sku][node].input_qty = amount
                self._after_stock_change(sku, before)
                feed.succeeded += 1
            else:
                feed.failed += 1
            item = self.items.get(sku)
            feed.results.append(
                {
                    "martId": 0,
                    "sku": sku,
                    "wpid": item.wpid if item else None,
                    "index": index,
                    "itemid": item.item_id if item else None,
                    "productIdentifiers": None,
                    "ingestionStatus": "SUCCESS" if error is None else error[0],
                    "ingestionErrors": {
                        "ingestionError": None
                        if error is None
                        else [
                            {
                                "type": error[0],
                                "code": "ERR_EXT_DATA_0101",
                                "field": error[1],
                                "description": error[2],
                            }
                        ]
                    },
                    "additionalAttributes": None,
                }
            )
        feed.status = "PROCESSED"

    def feed_json(self, feed: Feed, *, include_details: bool, offset: int, limit: int) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            status = feed.status
            if status == "RECEIVED" and now >= feed.submitted_at + (feed.due_at - feed.submitted_at) / 2:
                status = "INPROGRESS"
            processing = 0 if status == "PROCESSED" else len(feed.records)
            document: dict[str, Any] = {
                "feedId": feed.feed_id,
                "feedStatus": status,
                "shipNode": feed.ship_node,
                "submittedBy": None,
                "feedSubmissionDate": epoch_ms(feed.submitted_at),
                "ingestionErrors": {"ingestionError": None},
                "itemsReceived": len(feed.records),
                "itemsSucceeded": feed.succeeded,
                "itemsFailed": feed.failed,
                "itemsProcessing": processing,
                "offset": offset,
                "limit": limit,
            }
            if include_details:
                document["itemDetails"] = {"itemIngestionStatus": feed.results[offset : offset + limit]}
            return document

    # --- asynchronous work -----------------------------------------------------------------------------

    def process_due(self) -> None:
        """Apply every feed and MCS order whose processing delay has passed."""
        with self.lock:
            if not self._pending_feeds and not self._pending_fulfilments:
                return
            now = self.clock()
            due_feeds = [f for f in self._pending_feeds if now >= f.due_at]
            self._pending_feeds = [f for f in self._pending_feeds if now < f.due_at]
            for feed in due_feeds:
                self._apply_feed(feed)
                logger.info("walmart emulator processed feed", extra={"feed_id": feed.feed_id})
            due_orders = [o for o in self._pending_fulfilments if now >= o.due_at]
            self._pending_fulfilments = [o for o in self._pending_fulfilments if now < o.due_at]
            for order in due_orders:
                if order.status == "RECEIVED":
                    self._source(order)

    # --- Multichannel Solutions -------------------------------------------------------------------------

    def require_mcs(self) -> None:
        if not self.mcs_enrolled:
            raise WalmartError.mcs(
                403,
                "INVALID_MCS_REQUEST",
                "Seller is not onboarded to Multichannel Solutions",
                field="partnerId",
                info=f"partnerId {self.partner_id} is not enabled for MCS",
            )

    def add_channel(
        self,
        name: str = "Video commerce",
        *,
        return_address: dict[str, Any] | None = None,
        carrier_preference: str = "",
        active: bool = True,
        channel_id: str | None = None,
    ) -> Channel:
        with self.lock:
            channel = Channel(
                channel_id or uuid.UUID(int=self._random.getrandbits(128)).hex.upper()[:20],
                name,
                dict(return_address or {}),
                carrier_preference,
                active,
            )
            self.channels[channel.order_channel_id] = channel
            return channel

    def create_fulfilment(self, payload: dict[str, Any]) -> FulfilmentOrder:
        """Validate an MCS create-order payload (the `payload` part) and record the order as RECEIVED."""
        with self.lock:
            self.fulfilment_attempts += 1
            seller_order_id = payload.get("sellerOrderId")
            customer_order_no = payload.get("customerOrderNo")
            if seller_order_id is None and isinstance(customer_order_no, str):
                seller_order_id = customer_order_no
            if not isinstance(seller_order_id, str) or not seller_order_id:
                raise _invalid("sellerOrderId", "sellerOrderId is required", code="INVALID_SELLER_ORDER_ID")
            if customer_order_no is not None and customer_order_no != seller_order_id:
                raise _invalid(
                    "customerOrderNo",
                    "sellerOrderId and customerOrderNo must match",
                    code="SELLER_ORDER_ID_CUSTOMER_ORDER_NO_SAME",
                )
            if len(seller_order_id) > MAX_SELLER_ORDER_ID or not SELLER_ORDER_ID.fullmatch(seller_order_id):
                raise _invalid(
                    "sellerOrderId",
                    f"sellerOrderId must be at most {MAX_SELLER_ORDER_ID} alphanumeric characters",
                    code="INVALID_SELLER_ORDER_ID",
                )
            channel_id = payload.get("orderChannelId")
            channel = self.channels.get(channel_id) if isinstance(channel_id, str) else None
            if channel is None or not channel.active:
                raise _invalid("orderChannelId", "orderChannelId is not a valid sales channel of the seller")
            placed = payload.get("orderPlacedTime")
            if not isinstance(placed, str) or not _parse_time(placed):
                raise _invalid("orderPlacedTime", "orderPlacedTime must be an ISO-8601 date-time")
            for flag in ("needsConfirmation", "partialFulfillments"):
                if payload.get(flag, False) is not False:
                    raise _invalid(flag, f"{flag}: only false is supported")
            customer = payload.get("customer")
            if not isinstance(customer, dict) or not isinstance(customer.get("contact"), dict):
                raise _invalid("customer", "customer.contact is required")
            items = payload.get("orderItems")
            if not isinstance(items, list) or not items:
                raise _invalid("orderItems", "orderItems is required")
            lines: list[FulfilmentLine] = []
            shipping_to: dict[str, Any] = {}
            for position, entry in enumerate(items):
                lines.append(_fulfilment_line(entry, position, {line.seller_line_id for line in lines}))
                shipping_to = entry["shippingTo"]
            if seller_order_id in self.fulfilments:
                raise _invalid(
                    "sellerOrderId",
                    f"Duplicate sellerOrderId {seller_order_id}: an order with this sellerOrderId already exists",
                    code="INVALID_SELLER_ORDER_ID",
                    info="DUPLICATE_SELLER_ORDER_ID",
                )
            now = self.clock()
            order = FulfilmentOrder(
                seller_order_id=seller_order_id,
                request_id=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
                order_channel_id=channel.order_channel_id,
                order_placed_time=placed,
                created_at=now,
                due_at=now + self.mcs_delay,
                lines=lines,
                customer=customer,
                shipping_to=shipping_to,
            )
            self.fulfilments[seller_order_id] = order
            self._pending_fulfilments.append(order)
            self.fulfilment_requests[order.request_id] = seller_order_id
            logger.info(
                "walmart emulator MCS order received",
                extra={"seller_order_id": seller_order_id, "request_id": order.request_id},
            )
            return order

    def _source(self, order: FulfilmentOrder) -> None:
        """Accept (reserve stock) or reject the whole order, as Walmart does after the delivery-promise check."""
        problem: tuple[str, str] | None = None
        needed: Counter[str] = Counter()
        for line in order.lines:
            if line.status == "CANCELLED":
                continue
            if line.sku not in self.items:
                problem = ("ITEM_NOT_FOUND", line.sku)
                break
            needed[line.sku] += line.qty - line.cancelled_qty
        if problem is None:
            for sku, qty in needed.items():
                if self.total_available(sku) < qty:
                    problem = ("OUT_OF_STOCK", sku)
                    break
        live = [line for line in order.lines if line.status != "CANCELLED"]
        if problem is not None:
            for line in live:
                line.status, line.status_description = (
                    "REJECTED",
                    problem[0] if line.sku == problem[1] else "REJECTED",
                )
            order.status = "REJECTED"
        else:
            for line in live:
                before = self.total_available(line.sku)
                remaining = line.qty - line.cancelled_qty
                for node, stock in self.stock[line.sku].items():
                    take = min(remaining, stock.avail)
                    if take:
                        stock.reserved += take
                        line.reserved_at[node] = line.reserved_at.get(node, 0) + take
                        remaining -= take
                line.status, line.status_description = "PROCESSING", "SUCCESSFULLY_SOURCED"
                self._after_stock_change(line.sku, before)
            order.status = "ACCEPTED" if live else "CANCELLED"
        logger.info(
            "walmart emulator MCS order sourced",
            extra={"seller_order_id": order.seller_order_id, "status": order.status},
        )
        self._emit("ORDER_STATUS_UPDATE", self._mcs_event(order))

    def _mcs_event(self, order: FulfilmentOrder) -> dict[str, Any]:
        """An MCS webhook payload; statuses as the webhooks name them (Acknowledged, Shipped, Canceled)."""
        return {
            "partnerId": self.partner_id,
            "originSystemOrderId": order.seller_order_id,
            "orderChannelId": order.order_channel_id,
            "status": MCS_EVENT_STATUS.get(order.status, order.status),
            "lineItemStatus": [
                {
                    "sellerLineId": line.seller_line_id,
                    "itemDetail": {"sku": line.sku},
                    "itemStatus": [
                        {
                            "qty": {"unitOfMeasure": UNIT, "measurementValue": line.qty},
                            "status": MCS_EVENT_STATUS.get(line.status, line.status),
                        }
                    ],
                }
                for line in order.lines
            ],
            "shipmentDetails": list(order.shipments),
        }

    def fulfilment(
        self, *, seller_order_id: str | None = None, request_id: str | None = None
    ) -> FulfilmentOrder | None:
        with self.lock:
            self.process_due()
            if request_id is not None:
                seller_order_id = self.fulfilment_requests.get(request_id)
            return self.fulfilments.get(seller_order_id) if seller_order_id else None

    def fulfilments_between(self, start: float, end: float) -> list[FulfilmentOrder]:
        with self.lock:
            self.process_due()
            return [
                o
                for o in self.fulfilments.values()
                if start <= (_parse_time(o.order_placed_time) or o.created_at) < end
            ]

    def fulfilment_json(self, order: FulfilmentOrder) -> dict[str, Any]:
        with self.lock:
            return {
                "sellerOrderId": order.seller_order_id,
                "requestId": order.request_id,
                "orderChannelId": order.order_channel_id,
                "orderDate": order.order_placed_time,
                "status": order.status,
                "customer": order.customer,
                "orderLines": [
                    {
                        "sellerLineId": line.seller_line_id,
                        "itemDetail": {"sku": line.sku},
                        "orderLineQuantityInfo": [
                            {
                                "status": line.status,
                                "statusDescription": line.status_description,
                                "statusQuantity": {
                                    "unitOfMeasure": UNIT,
                                    "measurementValue": line.qty - line.cancelled_qty,
                                },
                            }
                        ]
                        + (
                            [
                                {
                                    "status": "CANCELLED",
                                    "statusDescription": "CANCELLED_BY_SELLER",
                                    "statusQuantity": {
                                        "unitOfMeasure": UNIT,
                                        "measurementValue": line.cancelled_qty,
                                    },
                                }
                            ]
                            if line.cancelled_qty and line.status != "CANCELLED"
                            else []
                        ),
                        "shippingMethod": line.shipping_method,
                        "shippingTier": line.shipping_method,
                    }
                    for line in order.lines
                ],
                "shipments": list(order.shipments),
            }

    def cancel_fulfilment(
        self, seller_order_id: str, lines: list[tuple[str, int | None]] | None
    ) -> FulfilmentOrder:
        """Cancel whole lines or quantities of not-yet-shipped lines (all of them when `lines` is None)."""
        with self.lock:
            self.process_due()
            order = self.fulfilments.get(seller_order_id)
            if order is None:
                raise WalmartError.mcs(
                    404, "OS_NOT_FOUND_ERROR", f"Order {seller_order_id} not found", field="sellerOrderId"
                )
            by_id = {line.seller_line_id: line for line in order.lines}
            wanted = lines if lines is not None else [(line.seller_line_id, None) for line in order.lines]
            for line_id, _ in wanted:
                line = by_id.get(line_id)
                if line is None:
                    raise _invalid(
                        "sellerLineId", f"Unknown sellerLineId {line_id}", code="INVALID_MCS_REQUEST"
                    )
                if line.shipped_qty or line.status in ("SHIPPED", "DELIVERED"):
                    raise _invalid(
                        "sellerLineId",
                        f"Line {line_id} has shipped and cannot be cancelled",
                        code="INVALID_MCS_REQUEST",
                    )
            for line_id, qty in wanted:
                line = by_id[line_id]
                if line.status in ("CANCELLED", "REJECTED"):
                    continue
                open_qty = line.qty - line.cancelled_qty
                cancel = open_qty if qty is None else min(qty, open_qty)
                line.cancelled_qty += cancel
                release = cancel
                for node, held in list(line.reserved_at.items()):
                    give = min(release, held)
                    self.stock[line.sku][node].reserved -= give
                    line.reserved_at[node] = held - give
                    release -= give
                if line.cancelled_qty >= line.qty:
                    line.status, line.status_description = "CANCELLED", "CANCELLED_BY_SELLER"
            if (
                all(line.status in ("CANCELLED", "REJECTED") for line in order.lines)
                and order.status != "REJECTED"
            ):
                order.status = "CANCELLED"
            self._emit("ORDER_STATUS_UPDATE", self._mcs_event(order))
            return order

    def ship_fulfilment(
        self, seller_order_id: str, *, tracking_number: str = "1Z999AA10123456784"
    ) -> FulfilmentOrder:
        """Ship every open line of an accepted MCS order (a test helper; Walmart does this in its FCs)."""
        with self.lock:
            self.process_due()
            order = self.fulfilments[seller_order_id]
            if order.status != "ACCEPTED":
                raise ValueError(f"order {seller_order_id} is {order.status}, not ACCEPTED")
            now = self.clock()
            shipment_lines = []
            for line in order.lines:
                if line.status != "PROCESSING":
                    continue
                line.shipped_qty = line.qty - line.cancelled_qty
                line.status, line.status_description = "SHIPPED", "SHIPPED"
                for node, held in line.reserved_at.items():
                    self.stock[line.sku][node].reserved -= held
                    self.stock[line.sku][node].input_qty -= held
                line.reserved_at.clear()
                shipment_lines.append(
                    {
                        "fulfillerLineId": line.seller_line_id,
                        "quantity": {"unitOfMeasure": UNIT, "measurementValue": line.shipped_qty},
                    }
                )
            order.status = "SHIPPED"
            order.shipments.append(
                {
                    "status": "SHIPPED",
                    "purchaseOrderId": str(next(self._po_numbers)),
                    "scac": "UPSN",
                    "trackingNo": tracking_number,
                    "externalTrackingURL": f"https://www.walmart.com/tracking?tracking_id={tracking_number}",
                    "shipmentNo": str(len(order.shipments) + 1),
                    "actualShipmentDate": iso_ms(now),
                    "carrierServiceCode": "GROUND",
                    "shipmentLines": shipment_lines,
                    "shipmentDates": [{"dateTypeId": "SHIPPED", "actualDate": iso_ms(now)}],
                }
            )
            self._emit("ORDER_SHIPMENT_UPDATE", self._mcs_event(order))
            self._emit("ORDER_STATUS_UPDATE", self._mcs_event(order))
            return order

    # --- Walmart-originated purchase orders ---------------------------------------------------------

    def add_order(
        self,
        lines: Iterable[tuple[str, int]],
        *,
        order_date: float | None = None,
        ship_node_type: str = "SellerFulfilled",
        reserve: bool = True,
    ) -> Order:
        """A purchase order placed on Walmart.com for (sku, qty) lines; its units are reserved at the default
        ship node (`reserve`) and PO_CREATED is announced."""
        with self.lock:
            when = self.clock() if order_date is None else order_date
            made: list[OrderLine] = []
            for number, (sku, qty) in enumerate(lines, start=1):
                item = self._require_item(sku)
                made.append(
                    OrderLine(
                        str(number),
                        sku,
                        item.product_name,
                        qty,
                        item.price,
                        status_date=epoch_ms(when),
                        statuses=[LineStatus("Created", qty)],
                    )
                )
            order = Order(
                purchase_order_id=str(next(self._po_numbers)),
                customer_order_id=str(next(self._customer_numbers)),
                order_date=epoch_ms(when),
                lines=made,
                ship_node_type=ship_node_type,
                ship_node_id=self.default_ship_node,
                last_modified=epoch_ms(when),
            )
            self.orders[order.purchase_order_id] = order
            if reserve:
                for line in made:
                    before = self.total_available(line.sku)
                    self.stock[line.sku][self.default_ship_node].reserved += line.qty
                    self._after_stock_change(line.sku, before)
            payload = {
                "partnerId": self.partner_id,
                "purchaseOrderId": order.purchase_order_id,
                "customerOrderId": order.customer_order_id,
                "orderDate": iso_ms(when),
                "estimatedDeliveryDate": iso_ms(when + 5 * 86400),
                "estimatedShipDate": iso_ms(when + 2 * 86400),
                "orderLines": [
                    {
                        "lineNumber": line.line_number,
                        "sku": line.sku,
                        "productName": line.product_name,
                        "quantity": {"unitOfMeasure": UNIT, "measurementValue": str(line.qty)},
                        "status": "CREATED",
                        "statusDate": iso_ms(when),
                        "shippingProgramType": "TWO_DAY",
                        "shippingMethod": "Standard",
                        "shipNodeType": ship_node_type,
                    }
                    for line in made
                ],
            }
        logger.info("walmart emulator order created", extra={"purchase_order_id": order.purchase_order_id})
        self._emit("PO_CREATED", payload)
        return order

    def query_orders(
        self,
        *,
        start_ms: int,
        end_ms: int,
        ship_node_type: str,
        status: str | None = None,
        sku: str | None = None,
        purchase_order_id: str | None = None,
        customer_order_id: str | None = None,
        modified_from_ms: int | None = None,
        modified_to_ms: int | None = None,
        released_only: bool = False,
    ) -> list[Order]:
        """Matching orders, newest first (ties by purchase order id). `status` matches any line status entry;
        `released_only` keeps orders with a line quantity still Created."""
        with self.lock:
            found = [
                o
                for o in self.orders.values()
                if start_ms <= o.order_date <= end_ms
                and o.ship_node_type == ship_node_type
                and (status is None or any(line.quantity_in(status) for line in o.lines))
                and (not released_only or any(line.quantity_in("Created") for line in o.lines))
                and (sku is None or any(line.sku == sku for line in o.lines))
                and (purchase_order_id is None or o.purchase_order_id == purchase_order_id)
                and (customer_order_id is None or o.customer_order_id == customer_order_id)
                and (modified_from_ms is None or o.last_modified >= modified_from_ms)
                and (modified_to_ms is None or o.last_modified <= modified_to_ms)
            ]
            found.sort(key=lambda o: (-o.order_date, o.purchase_order_id))
            return found

    def order(self, purchase_order_id: str) -> Order:
        with self.lock:
            order = self.orders.get(purchase_order_id)
            if order is None:
                raise WalmartError.not_found(
                    f"Purchase order {purchase_order_id} not found", field="purchaseOrderId"
                )
            return order

    def acknowledge(self, purchase_order_id: str) -> Order:
        """Move every Created quantity to Acknowledged (allowed again on an acknowledged order)."""
        with self.lock:
            order = self.order(purchase_order_id)
            if order.ship_node_type == "WFSFulfilled":
                raise WalmartError.bad_content(
                    "purchaseOrderId", "WFS-fulfilled orders cannot be acknowledged"
                )
            now = epoch_ms(self.clock())
            for line in order.lines:
                created = line.quantity_in("Created")
                if created:
                    line.move(created, LineStatus("Acknowledged", created), now)
                    line.statuses = _merged(line.statuses)
            order.last_modified = now
            return order

    def ship_order(self, purchase_order_id: str, body: Any) -> Order:
        """`POST /v3/orders/{po}/shipping`: shipped units leave the default node (input and reserved)."""
        with self.lock:
            order = self.order(purchase_order_id)
            for sku, qty in apply_shipment(order, body, epoch_ms(self.clock())):
                stock = self.stock[sku][order.ship_node_id or self.default_ship_node]
                stock.reserved = max(0, stock.reserved - qty)
                stock.input_qty = max(0, stock.input_qty - qty)
            return order

    def cancel_order(self, purchase_order_id: str, body: Any) -> Order:
        """`POST /v3/orders/{po}/cancel`: cancelled units are released back to sale."""
        with self.lock:
            order = self.order(purchase_order_id)
            for sku, qty in apply_cancellation(order, body, epoch_ms(self.clock())):
                stock = self.stock[sku][order.ship_node_id or self.default_ship_node]
                stock.reserved = max(0, stock.reserved - qty)
            return order

    # --- subscriptions ---------------------------------------------------------------------------------

    def subscribers(self, event_type: str) -> list[Subscription]:
        with self.lock:
            return [
                s for s in self.subscriptions.values() if s.event_type == event_type and s.status == "ACTIVE"
            ]


def _merged(entries: list[LineStatus]) -> list[LineStatus]:
    """Entries of the same status without tracking or reason folded into one."""
    merged: list[LineStatus] = []
    for entry in entries:
        same = next(
            (
                m
                for m in merged
                if m.status == entry.status
                and m.tracking is None
                and entry.tracking is None
                and m.cancellation_reason == entry.cancellation_reason
            ),
            None,
        )
        if same is None:
            merged.append(entry)
        else:
            same.qty += entry.qty
    return merged


def _invalid(
    field: str, description: str, *, code: str = "ERR_EXT_DATA_0021001", info: str = ""
) -> WalmartError:
    return WalmartError.mcs(
        400,
        code,
        description,
        field=field,
        info=info or f"[Error [code=400.WSAAS.106, field={field}, description={description}]]",
    )


def _parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _fulfilment_line(entry: Any, position: int, seen: set[str]) -> FulfilmentLine:
    where = f"orderItems[{position}]"
    if not isinstance(entry, dict):
        raise _invalid(where, "each order item must be an object")
    line_id = entry.get("sellerLineId")
    if not isinstance(line_id, str) or not line_id or len(line_id) > MAX_SELLER_LINE_ID:
        raise _invalid(
            f"{where}.sellerLineId", f"sellerLineId is required, at most {MAX_SELLER_LINE_ID} characters"
        )
    if line_id in seen:
        raise _invalid(f"{where}.sellerLineId", f"duplicate sellerLineId {line_id}")
    if entry.get("fulfillmentType", "DELIVERY") != "DELIVERY":
        raise _invalid(f"{where}.fulfillmentType", "fulfillmentType must be DELIVERY")
    method = entry.get("shippingMethod", "STANDARD")
    if method not in ("STANDARD", "EXPEDITED", "RUSH"):
        raise _invalid(f"{where}.shippingMethod", "shippingMethod must be STANDARD, EXPEDITED or RUSH")
    detail = entry.get("itemDetail")
    sku = detail.get("sku") if isinstance(detail, dict) else None
    if not isinstance(sku, str) or not sku:
        raise _invalid(f"{where}.itemDetail.sku", "itemDetail.sku is required")
    qty = entry.get("qty")
    value = qty.get("measurementValue") if isinstance(qty, dict) else None
    if not isinstance(qty, dict) or qty.get("unitOfMeasure") != UNIT:
        raise _invalid(f"{where}.qty.unitOfMeasure", "qty.unitOfMeasure must be EACH")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _invalid(f"{where}.qty.measurementValue", "qty.measurementValue must be a positive integer")
    charges = entry.get("chargeDetails")
    if not isinstance(charges, list) or not charges:
        raise _invalid(f"{where}.chargeDetails", "chargeDetails is required")
    shipping = entry.get("shippingTo")
    if not isinstance(shipping, dict) or not isinstance(shipping.get("contact"), dict):
        raise _invalid(f"{where}.shippingTo.contact", "shippingTo.contact is required")
    address = shipping.get("address")
    if not isinstance(address, dict):
        raise _invalid(f"{where}.shippingTo.address", "shippingTo.address is required")
    for key, check, rule in (
        ("line1", lambda v: bool(v), "is required"),
        ("city", lambda v: bool(v), "is required"),
        ("state", lambda v: len(v) == 2, "must be 2 characters"),
        ("zip", lambda v: len(v) == 5, "must be 5 characters"),
        ("country", lambda v: 0 < len(v) <= 3, "must be at most 3 characters"),
    ):
        value_ = address.get(key)
        if not isinstance(value_, str) or not check(value_):
            raise _invalid(f"{where}.shippingTo.address.{key}", f"address.{key} {rule}")
    phone = shipping["contact"].get("phone")
    if phone is not None and (not isinstance(phone, str) or len(phone) > 15):
        raise _invalid(f"{where}.shippingTo.contact.phone", "phone must be at most 15 characters")
    return FulfilmentLine(line_id, sku, value, method)
