"""One emulated Walmart seller's state: catalog items, per-ship-node inventory, bulk inventory feeds,
Multichannel (MCS) fulfilment orders and sales channels, Walmart-originated purchase orders, notification
subscriptions, and counters tests read. Every method is thread-safe; asynchronous work (feeds, MCS orders)
becomes due on the store's clock and is applied by `process_due()`; changes that Walmart announces are passed
to `listeners` as (eventType, payload)."""

from __future__ import annotations

import logging

from connector.sandbox.walmart.catalog import CatalogMixin
from connector.sandbox.walmart.fulfilment import FulfilmentMixin
from connector.sandbox.walmart.inventory_feeds import FeedsMixin
from connector.sandbox.walmart.purchase_orders import PurchaseOrdersMixin
from connector.sandbox.walmart.records import (
    EVENT_TYPES,
    FEED_TYPES,
    MART,
    MAX_SELLER_LINE_ID,
    MAX_SELLER_ORDER_ID,
    MCS_EVENT_STATUS,
    PRODUCT_TYPES,
    SELLER_ORDER_ID,
    SHELVES,
    UNIT,
    Channel,
    Feed,
    FulfilmentLine,
    FulfilmentOrder,
    Item,
    Listener,
    NodeStock,
    Subscription,
    epoch_ms,
    iso_ms,
    quantity,
    upc_check_digit,
)

__all__ = [
    "EVENT_TYPES",
    "FEED_TYPES",
    "MART",
    "MAX_SELLER_LINE_ID",
    "MAX_SELLER_ORDER_ID",
    "MCS_EVENT_STATUS",
    "PRODUCT_TYPES",
    "SELLER_ORDER_ID",
    "SHELVES",
    "UNIT",
    "Channel",
    "Feed",
    "FulfilmentLine",
    "FulfilmentOrder",
    "Item",
    "Listener",
    "NodeStock",
    "Store",
    "Subscription",
    "epoch_ms",
    "iso_ms",
    "quantity",
    "upc_check_digit",
]

logger = logging.getLogger(__name__)


class Store(CatalogMixin, FeedsMixin, FulfilmentMixin, PurchaseOrdersMixin):
    """One seller's state on a clock (`time.time` unless given, so tests can move time)."""

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

    def subscribers(self, event_type: str) -> list[Subscription]:
        with self.lock:
            return [
                s for s in self.subscriptions.values() if s.event_type == event_type and s.status == "ACTIVE"
            ]
