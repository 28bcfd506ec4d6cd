"""The emulated shop's in-memory tables and what every change needs: the shop record, id counters, clock,
lock, listeners (each change announced as a webhook topic and REST body) and lookups by id or GID."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from connector.sandbox.shopify.models import (
    BulkOperation,
    Collection,
    InventoryItem,
    InventoryLevel,
    Location,
    Product,
    ProductVariant,
    Record,
    WebhookSubscription,
    gid,
    parse_gid,
)
from connector.sandbox.shopify.order_models import Job, Order

if TYPE_CHECKING:
    from connector.sandbox.shopify.store import Store

logger = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any], datetime], None]


@dataclass(eq=False)
class Shop(Record):
    typename: ClassVar[str] = "Shop"
    legacy_resource_id: int
    name: str
    myshopify_domain: str
    currency_code: str
    email: str
    created_at: datetime
    updated_at: datetime
    iana_timezone: str = "Etc/UTC"
    taxes_included: bool = False
    weight_unit: str = "KILOGRAMS"

    @property
    def url(self) -> str:
        return f"https://{self.myshopify_domain}"

    @property
    def contact_email(self) -> str:
        return self.email

    def gql_plan(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {
            "displayName": "Development",
            "partnerDevelopment": True,
            "shopifyPlus": False,
            "publicDisplayName": "Development",
        }

    def gql_primary_domain(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {
            "id": gid("Domain", self.legacy_resource_id),
            "host": self.myshopify_domain,
            "url": self.url,
            "sslEnabled": True,
        }

    def gql_enabled_presentment_currencies(self, ctx: Context, **_: Any) -> list[str]:
        return [self.currency_code]


@dataclass
class Context:
    """What resolvers see: the store, whether this is a bulk run, and the emulator's base URL."""

    store: Store
    bulk: bool = False
    base_url: str = ""
    emulator: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failure:
    """A user error: the `userErrors` entry a mutation answers."""

    message: str
    field: list[str] | None = None
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field, "code": self.code}


def number_of(value: int | str, kind: str) -> int:
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    number = parse_gid(value, kind)
    if number is None:
        raise KeyError(f"not a {kind} id: {value}")
    return number


class StoreState:
    """The shop's tables, id counters, clock, lock and listeners, with lookups by id or GID; the concept
    modules (catalog, inventory, orders, subscriptions) add the changes."""

    def __init__(
        self,
        *,
        shop_name: str = "Storelink Demo",
        domain: str = "storelink-demo.myshopify.com",
        currency: str = "USD",
        clock: Callable[[], float] = time.time,
        job_delay: float = 0.05,
        large_ids: bool = False,
    ):
        self.clock = clock
        self.job_delay = job_delay
        self.lock = threading.RLock()
        self._ids = {
            kind: itertools.count(start)
            for kind, start in {
                "Location": 76_000_000_001,
                "Product": 8_100_000_000_001,
                "ProductVariant": 45_100_000_000_001,
                "InventoryItem": 47_200_000_000_001,
                "Order": 6_100_000_000_001,
                "LineItem": 15_300_000_000_001,
                "OrderTransaction": 7_900_000_000_001,
                "WebhookSubscription": 1_470_000_000_001,
                "BulkOperation": 5_500_000_000_001,
                "InventoryAdjustmentGroup": 30_000_000_001,
                "Refund": 990_000_000_001,
                "Fulfillment": 5_600_000_000_001,
                "Collection": 841_000_000_001,
            }.items()
        }
        if large_ids:
            # Ids past 2**53, as some real shops have: a float (or a JavaScript number) would corrupt them.
            self._ids = {kind: itertools.count(2**53 + next(counter)) for kind, counter in self._ids.items()}
        self._order_numbers = itertools.count(1001)
        now = self.now()
        self.shop = Shop(
            legacy_resource_id=68_000_000_001,
            name=shop_name,
            myshopify_domain=domain,
            currency_code=currency,
            email=f"owner@{domain}",
            created_at=now - timedelta(days=365),
            updated_at=now - timedelta(days=30),
        )
        self.locations: dict[int, Location] = {}
        self.products: dict[int, Product] = {}
        self.variants: dict[int, ProductVariant] = {}
        self.inventory_items: dict[int, InventoryItem] = {}
        self.orders: dict[int, Order] = {}
        self.subscriptions: dict[int, WebhookSubscription] = {}
        self.bulk_operations: dict[int, BulkOperation] = {}
        self.collections: dict[int, Collection] = {}
        self.jobs: dict[str, Job] = {}
        self.idempotency: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self.listeners: list[Listener] = []
        self._pending_cancellations: dict[str, dict[str, Any]] = {}
        self.primary_location = self.add_location("Main warehouse")

    # --- basics ------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def next_id(self, kind: str) -> int:
        return next(self._ids[kind])

    def _emit(self, topic: str, body: dict[str, Any]) -> None:
        triggered = self.now()
        for listener in list(self.listeners):
            try:
                listener(topic, body, triggered)
            except Exception:
                logger.exception("webhook listener failed", extra={"topic": topic})

    def add_location(self, name: str) -> Location:
        with self.lock:
            now = self.now()
            location = Location(self.next_id("Location"), name, now, now)
            self.locations[location.legacy_resource_id] = location
            return location

    def levels_at(self, location_id: int) -> Iterator[InventoryLevel]:
        for item in self.inventory_items.values():
            level = item.levels.get(location_id)
            if level is not None:
                yield level

    def product(self, product_id: int | str) -> Product:
        return self.products[number_of(product_id, "Product")]

    def variant(self, variant_id: int | str) -> ProductVariant:
        return self.variants[number_of(variant_id, "ProductVariant")]

    def collection(self, collection_id: int | str) -> Collection:
        return self.collections[number_of(collection_id, "Collection")]

    def order(self, order_id: int | str) -> Order:
        return self.orders[number_of(order_id, "Order")]

    def find_node(self, value: str) -> Any:
        """The record a GID names, or None."""
        if value.startswith("gid://shopify/InventoryLevel/"):
            location = parse_gid(value, "InventoryLevel")
            item_part = value.partition("inventory_item_id=")[2]
            item = self.inventory_items.get(int(item_part)) if item_part.isdigit() else None
            return item.levels.get(location or -1) if item else None
        if value.startswith("gid://shopify/Job/"):
            return self.jobs.get(value)
        tables: dict[str, dict[int, Any]] = {
            "Product": self.products,
            "ProductVariant": self.variants,
            "InventoryItem": self.inventory_items,
            "Location": self.locations,
            "Order": self.orders,
            "WebhookSubscription": self.subscriptions,
            "BulkOperation": self.bulk_operations,
            "Collection": self.collections,
        }
        for kind, table in tables.items():
            number = parse_gid(value, kind)
            if number is not None:
                return table.get(number)
        if parse_gid(value, "Shop") == self.shop.legacy_resource_id:
            return self.shop
        return None
