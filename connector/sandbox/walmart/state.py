"""What every part of an emulated Walmart seller account shares: its tables, counters, clock, lock and
listeners (changes Walmart announces passed on as (eventType, payload)), and the lookup of a required item."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.orders import Order
from connector.sandbox.walmart.records import (
    Channel,
    Feed,
    FulfilmentOrder,
    Item,
    Listener,
    NodeStock,
    Subscription,
)

logger = logging.getLogger(__name__)


class StoreState:
    """One seller's tables, counters, clock, lock and listeners; the concept modules add the operations."""

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

    def _require_item(self, sku: str) -> Item:
        item = self.items.get(sku)
        if item is None:
            raise WalmartError.not_found(f"Item with sku {sku} not found", field="sku")
        return item

    def process_due(self) -> None:
        """Apply the asynchronous work whose delay has passed (the composed store defines it)."""
        raise NotImplementedError
