"""The emulated shop's in-memory state and every change to it (seeding, catalog and inventory edits, orders,
fulfilments, refunds, cancellations), each change announced to listeners as a webhook topic and REST body."""

from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final

import orjson

from connector.sandbox.shopify import payloads
from connector.sandbox.shopify.models import (
    QUANTITY_NAMES,
    BulkOperation,
    InventoryItem,
    InventoryLevel,
    Job,
    LineItem,
    Location,
    Order,
    Product,
    ProductVariant,
    Record,
    Transaction,
    WebhookSubscription,
    gid,
    parse_gid,
)

logger = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any], datetime], None]

SET_REASONS: Final = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
MAX_QUANTITY: Final = 1_000_000_000
_COLORS: Final = ("Black", "White", "Red", "Blue", "Green", "Sand", "Navy", "Olive")
_SIZES: Final = ("XS", "S", "M", "L", "XL", "XXL")
_NOUNS: Final = ("T-Shirt", "Hoodie", "Sneaker", "Backpack", "Cap", "Jacket", "Mug", "Lamp", "Scarf", "Watch")
_ADJECTIVES: Final = ("Classic", "Vintage", "Urban", "Cozy", "Bold", "Everyday", "Premium", "Eco", "Retro")
_VENDORS: Final = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark")


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


def _number(value: int | str, kind: str) -> int:
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    number = parse_gid(value, kind)
    if number is None:
        raise KeyError(f"not a {kind} id: {value}")
    return number


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


_FILTER = re.compile(r"""(?P<key>[\w.]+):(?P<op>>=|<=|>|<)?(?P<value>'[^']*'|"[^"]*"|\S+)|(?P<word>\S+)""")


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def search(query: str | None, fields: dict[str, Callable[[Any], Any]]) -> Callable[[Any], bool]:
    """A predicate for Shopify's search syntax (`key:value`, `key:>value`, quoted values, AND between terms;
    unknown keys are ignored, as Shopify ignores them with a warning)."""
    if not query:
        return lambda _: True
    terms: list[tuple[Callable[[Any], Any], str, str]] = []
    words: list[str] = []
    for match in _FILTER.finditer(query):
        if match["word"]:
            if match["word"].upper() not in ("AND",):
                words.append(match["word"].strip("'\"").lower())
            continue
        getter = fields.get(match["key"])
        if getter is not None:
            terms.append((getter, match["op"] or ":", match["value"].strip("'\"")))

    def compare(actual: Any, op: str, wanted: str) -> bool:
        if isinstance(actual, list):
            return any(compare(item, op, wanted) for item in actual)
        if actual is None:
            return False
        if isinstance(actual, str) and op != ":":
            actual = _decimal(actual) if _decimal(actual) is not None else (_parse_time(actual) or actual)
        if isinstance(actual, datetime):
            moment = _parse_time(wanted)
            if moment is None:
                return False
            return {
                ">": actual > moment,
                ">=": actual >= moment,
                "<": actual < moment,
                "<=": actual <= moment,
                ":": actual == moment,
            }[op]
        if isinstance(actual, int | Decimal) and not isinstance(actual, bool):
            number = _decimal(wanted)
            if number is None:
                return False
            return {
                ">": actual > number,
                ">=": actual >= number,
                "<": actual < number,
                "<=": actual <= number,
                ":": actual == number,
            }[op]
        text = str(actual).lower()
        if wanted.endswith("*"):
            return text.startswith(wanted[:-1].lower())
        return text == wanted.lower()

    def matches(item: Any) -> bool:
        if not all(compare(getter(item), op, wanted) for getter, op, wanted in terms):
            return False
        title = str(getattr(item, "title", getattr(item, "name", ""))).lower()
        return all(word in title for word in words)

    return matches


PRODUCT_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda p: p.updated_at,
    "created_at": lambda p: p.created_at,
    "title": lambda p: p.title,
    "handle": lambda p: p.handle,
    "status": lambda p: p.status,
    "vendor": lambda p: p.vendor,
    "product_type": lambda p: p.product_type,
    "tag": lambda p: p.tags,
    "sku": lambda p: [v.sku for v in p.variants],
    "barcode": lambda p: [v.barcode for v in p.variants],
    "id": lambda p: p.legacy_resource_id,
}
VARIANT_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda v: v.updated_at,
    "created_at": lambda v: v.created_at,
    "sku": lambda v: v.sku,
    "barcode": lambda v: v.barcode,
    "product_id": lambda v: v.product.legacy_resource_id,
    "id": lambda v: v.legacy_resource_id,
    "title": lambda v: v.title,
}
ITEM_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda i: i.updated_at,
    "created_at": lambda i: i.created_at,
    "sku": lambda i: i.sku,
    "id": lambda i: i.legacy_resource_id,
}
ORDER_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda o: o.updated_at,
    "created_at": lambda o: o.created_at,
    "processed_at": lambda o: o.processed_at,
    "source_identifier": lambda o: o.source_identifier,
    "source_name": lambda o: o.source_name,
    "tag": lambda o: o.tags,
    "name": lambda o: [o.name, str(o.number)],
    "email": lambda o: o.email,
    "id": lambda o: o.legacy_resource_id,
    "financial_status": lambda o: o.financial_status,
    "fulfillment_status": lambda o: o.fulfillment_status,
    "status": lambda o: "cancelled" if o.cancelled_at else ("closed" if o.closed_at else "open"),
    "test": lambda o: str(o.test).lower(),
}


def dig(body: Any, path: str) -> Any:
    """The values at a dotted path of a webhook body (lists are walked), for subscription filters."""
    values = [body]
    for part in path.split("."):
        found: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            found.extend(item[part] for item in items if isinstance(item, dict) and part in item)
        values = found
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


class PayloadFields(dict[str, Callable[[Any], Any]]):
    """Search fields for any dotted key of a webhook body."""

    def get(self, key: str, default: Any = None) -> Callable[[Any], Any]:
        return lambda body: dig(body, key)


LOCATION_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "name": lambda loc: loc.name,
    "id": lambda loc: loc.legacy_resource_id,
}


class Store:
    """One shop's state. Every method is thread-safe; changes are announced to `listeners`."""

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
        return self.products[_number(product_id, "Product")]

    def variant(self, variant_id: int | str) -> ProductVariant:
        return self.variants[_number(variant_id, "ProductVariant")]

    def order(self, order_id: int | str) -> Order:
        return self.orders[_number(order_id, "Order")]

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
        }
        for kind, table in tables.items():
            number = parse_gid(value, kind)
            if number is not None:
                return table.get(number)
        if parse_gid(value, "Shop") == self.shop.legacy_resource_id:
            return self.shop
        return None

    # --- catalog -----------------------------------------------------------------------------------------

    def _new_variant(
        self,
        product: Product,
        *,
        title: str,
        sku: str | None,
        barcode: str | None,
        price: Decimal,
        compare_at_price: Decimal | None,
        options: list[tuple[str, str]],
        available: int | None,
        location: Location,
        when: datetime,
        tracked: bool = True,
    ) -> ProductVariant:
        item = InventoryItem(self.next_id("InventoryItem"), sku, when, when, tracked=tracked)
        variant = ProductVariant(
            legacy_resource_id=self.next_id("ProductVariant"),
            product=product,
            title=title,
            sku=sku,
            barcode=barcode,
            price=price,
            compare_at_price=compare_at_price,
            position=len(product.variants) + 1,
            options=options,
            inventory_item=item,
            created_at=when,
            updated_at=when,
        )
        item.variant = variant
        if available is not None:
            quantities = dict.fromkeys(QUANTITY_NAMES, 0)
            quantities["available"] = quantities["on_hand"] = available
            item.levels[location.legacy_resource_id] = InventoryLevel(item, location, quantities, when, when)
        product.variants.append(variant)
        self.variants[variant.legacy_resource_id] = variant
        self.inventory_items[item.legacy_resource_id] = item
        return variant

    def seed_catalog(
        self,
        products: int,
        variants_per_product: int = 3,
        *,
        seed: int = 0,
        available: tuple[int, int] = (0, 50),
        location: Location | None = None,
    ) -> list[Product]:
        """Generate `products` products with `variants_per_product` variants each: prices, SKUs, EAN-13
        barcodes, one inventory item per variant stocked at one location. Linear in the size; no webhooks."""
        rng = random.Random(seed)
        created: list[Product] = []
        with self.lock:
            where = location or self.primary_location
            start = self.now() - timedelta(days=30)
            for index in range(products):
                when = start + timedelta(seconds=index)
                number = self.next_id("Product")
                noun, adjective = rng.choice(_NOUNS), rng.choice(_ADJECTIVES)
                title = f"{adjective} {noun} {index + 1}"
                product = Product(
                    legacy_resource_id=number,
                    title=title,
                    handle=f"{adjective}-{noun}-{index + 1}".lower().replace(" ", "-"),
                    description_html=f"<p>The {adjective.lower()} {noun.lower()} everyone talks about.</p>",
                    vendor=rng.choice(_VENDORS),
                    product_type=noun,
                    status="ACTIVE",
                    tags=sorted({noun.lower(), adjective.lower()}),
                    created_at=when,
                    updated_at=when,
                )
                base = Decimal(rng.randrange(500, 20000)) / 100
                for position in range(variants_per_product):
                    color = _COLORS[position // len(_SIZES) % len(_COLORS)]
                    size = _SIZES[position % len(_SIZES)]
                    sku = f"SKU-{index + 1:06d}-{position + 1:03d}"
                    self._new_variant(
                        product,
                        title=f"{color} / {size}",
                        sku=sku,
                        barcode=_ean13(seed * 10_000_000 + index * 1000 + position),
                        price=base + position,
                        compare_at_price=(base + position + 10) if rng.random() < 0.2 else None,
                        options=[("Color", color), ("Size", size)],
                        available=rng.randint(*available),
                        location=where,
                        when=when,
                    )
                self.products[number] = product
                created.append(product)
        return created

    def add_product(
        self,
        title: str,
        *,
        variants: Iterable[dict[str, Any]] = ({},),
        vendor: str = "Acme",
        product_type: str = "",
        status: str = "ACTIVE",
        tags: Iterable[str] = (),
        notify: bool = True,
    ) -> Product:
        """Create a product; each variant dict may give title, sku, barcode, price, compare_at_price, available."""
        with self.lock:
            when = self.now()
            product = Product(
                legacy_resource_id=self.next_id("Product"),
                title=title,
                handle=re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
                description_html="",
                vendor=vendor,
                product_type=product_type,
                status=status,
                tags=sorted(tags),
                created_at=when,
                updated_at=when,
            )
            for spec in variants:
                variant_title = str(spec.get("title", "Default Title"))
                self._new_variant(
                    product,
                    title=variant_title,
                    sku=spec.get("sku"),
                    barcode=spec.get("barcode"),
                    price=Decimal(str(spec.get("price", "10.00"))),
                    compare_at_price=_decimal(spec["compare_at_price"])
                    if spec.get("compare_at_price")
                    else None,
                    options=[("Title", variant_title)],
                    available=int(spec.get("available", 0)),
                    location=self.primary_location,
                    when=when,
                )
            self.products[product.legacy_resource_id] = product
            if notify:
                self._emit("products/create", payloads.product(product))
            return product

    def update_product(self, product_id: int | str, **changes: Any) -> Product:
        """Change product fields (title, vendor, status, tags, description_html, ...) and, with `variants` =
        {variant id: {price, sku, barcode, compare_at_price, title}}, its variants. Sends products/update."""
        with self.lock:
            product = self.product(product_id)
            when = self.now()
            for variant_id, fields in (changes.pop("variants", None) or {}).items():
                variant = self.variant(variant_id)
                for name, value in fields.items():
                    if name in ("price", "compare_at_price") and value is not None:
                        value = Decimal(str(value))
                    setattr(variant, name, value)
                    if name == "sku":
                        variant.inventory_item.sku = value
                variant.updated_at = when
            for name, value in changes.items():
                if not hasattr(product, name) or name in ("variants", "legacy_resource_id"):
                    raise AttributeError(f"products have no field {name!r}")
                setattr(product, name, sorted(value) if name == "tags" else value)
            product.updated_at = when
            self._emit("products/update", payloads.product(product))
            return product

    def delete_product(self, product_id: int | str) -> None:
        with self.lock:
            product = self.products.pop(_number(product_id, "Product"))
            for variant in product.variants:
                self.variants.pop(variant.legacy_resource_id, None)
                self.inventory_items.pop(variant.inventory_item.legacy_resource_id, None)
            self._emit("products/delete", payloads.product_deleted(product))

    # --- inventory ---------------------------------------------------------------------------------------

    def level(
        self, item_id: int | str, location_id: int | str | None = None, *, create: bool = False
    ) -> InventoryLevel:
        item = self.inventory_items[_number(item_id, "InventoryItem")]
        location = (
            self.locations[_number(location_id, "Location")]
            if location_id is not None
            else self.primary_location
        )
        found = item.levels.get(location.legacy_resource_id)
        if found is None:
            if not create:
                raise KeyError(f"inventory item {item.legacy_resource_id} is not stocked at {location.name}")
            when = self.now()
            found = InventoryLevel(item, location, dict.fromkeys(QUANTITY_NAMES, 0), when, when)
            item.levels[location.legacy_resource_id] = found
        return found

    def _change(self, level: InventoryLevel, name: str, delta: int, when: datetime) -> None:
        """Move one quantity, keeping on_hand = available + committed + reserved + the unavailable states."""
        if not delta:
            return
        level.quantities[name] = level.quantities.get(name, 0) + delta
        if name == "on_hand":
            level.quantities["available"] = level.quantities.get("available", 0) + delta
        elif name in ("available", "damaged", "safety_stock", "quality_control", "reserved", "committed"):
            level.quantities["on_hand"] = level.quantities.get("on_hand", 0) + delta
        level.updated_at = when
        level.item.updated_at = when

    def set_inventory(
        self, item_id: int | str, location_id: int | str | None, available: int, *, notify: bool = True
    ) -> InventoryLevel:
        """Set `available` (on_hand follows); sends inventory_levels/update."""
        with self.lock:
            level = self.level(item_id, location_id, create=True)
            self._change(level, "available", available - level.available, self.now())
            if notify:
                self._emit("inventory_levels/update", payloads.inventory_level(level))
            return level

    def set_quantities(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        """inventorySetQuantities with its idempotency key: the payload (`inventoryAdjustmentGroup`,
        `userErrors`), replayed for a repeated key with the same input."""
        return self._idempotent("inventorySetQuantities", data, key, self._set_quantities)

    def adjust_quantities(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        """inventoryAdjustQuantities with its idempotency key (deltas instead of absolute quantities)."""
        return self._idempotent("inventoryAdjustQuantities", data, key, self._adjust_quantities)

    def _idempotent(
        self, mutation: str, data: dict[str, Any], key: str, run: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        fingerprint = orjson.dumps({"mutation": mutation, "input": data}, option=orjson.OPT_SORT_KEYS)
        with self.lock:
            previous = self.idempotency.get(key)
            if previous is not None:
                if previous[0] != fingerprint:
                    return _errors(
                        Failure(
                            "The same idempotency key cannot be used with different operation parameters.",
                            None,
                            "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        )
                    )
                if previous[1]["userErrors"]:
                    return _errors(
                        Failure(
                            "A previous request with this idempotency key failed. Retry with a new idempotency key.",
                            None,
                            "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                        )
                    )
                return previous[1]
            result = run(data)
            self.idempotency[key] = (fingerprint, result)
            return result

    def _targets(
        self, name: str, entries: list[dict[str, Any]], field_name: str, absolute: bool
    ) -> tuple[list[tuple[InventoryItem, Location, int]], list[Failure]]:
        """Check each quantity (item, location, compare-and-swap, bounds): (item, location, delta) or failures."""
        failures: list[Failure] = []
        targets: list[tuple[InventoryItem, Location, int]] = []
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(entries):
            path = ["input", field_name, str(index)]
            pair = (entry["inventoryItemId"], entry["locationId"])
            if absolute and pair in seen:
                failures.append(
                    Failure(
                        "The combination of inventoryItemId and locationId must be unique.",
                        path,
                        "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    )
                )
                continue
            seen.add(pair)
            item = self.inventory_items.get(parse_gid(entry["inventoryItemId"], "InventoryItem") or -1)
            location = self.locations.get(parse_gid(entry["locationId"], "Location") or -1)
            if item is None:
                failures.append(
                    Failure(
                        "The specified inventory item could not be found.",
                        [*path, "inventoryItemId"],
                        "INVALID_INVENTORY_ITEM",
                    )
                )
                continue
            if location is None:
                failures.append(
                    Failure(
                        "The specified location could not be found.",
                        [*path, "locationId"],
                        "INVALID_LOCATION",
                    )
                )
                continue
            if "changeFromQuantity" not in entry:
                failures.append(
                    Failure(
                        "The changeFromQuantity argument must be given to each quantity or explicitly set to null.",
                        [*path, "changeFromQuantity"],
                        None,
                    )
                )
                continue
            level = item.levels.get(location.legacy_resource_id)
            current = level.quantities.get(name, 0) if level else 0
            target = entry["quantity"] if absolute else current + entry["delta"]
            if target > MAX_QUANTITY:
                failures.append(
                    Failure(
                        "The total quantity can't be higher than 1,000,000,000.",
                        [*path, "quantity" if absolute else "delta"],
                        "INVALID_QUANTITY_TOO_HIGH",
                    )
                )
                continue
            if target < -MAX_QUANTITY:
                failures.append(
                    Failure(
                        "The total quantity can't be lower than -1,000,000,000.",
                        [*path, "quantity" if absolute else "delta"],
                        "INVALID_QUANTITY_TOO_LOW",
                    )
                )
                continue
            if absolute and name == "on_hand" and target < 0:
                failures.append(
                    Failure(
                        "The quantity can't be negative.", [*path, "quantity"], "INVALID_QUANTITY_NEGATIVE"
                    )
                )
                continue
            expected = entry["changeFromQuantity"]
            if expected is not None and expected != current:
                failures.append(
                    Failure(
                        "The changeFromQuantity value does not match persisted value.",
                        [*path, "changeFromQuantity"],
                        "CHANGE_FROM_QUANTITY_STALE",
                    )
                )
                continue
            targets.append((item, location, target - current))
        return targets, failures

    def _set_quantities(self, data: dict[str, Any]) -> dict[str, Any]:
        name, reason = data["name"], data["reason"]
        if name not in ("available", "on_hand"):
            return _errors(
                Failure(
                    "The quantity name must be either 'available' or 'on_hand'.",
                    ["input", "name"],
                    "INVALID_NAME",
                )
            )
        if reason not in SET_REASONS:
            return _errors(Failure("The specified reason is invalid.", ["input", "reason"], "INVALID_REASON"))
        targets, failures = self._targets(name, data["quantities"], "quantities", absolute=True)
        if failures:
            return _errors(*failures)
        return self._apply(name, data, targets)

    def _adjust_quantities(self, data: dict[str, Any]) -> dict[str, Any]:
        name, reason = data["name"], data["reason"]
        if name not in ("available", "damaged", "incoming", "quality_control", "reserved", "safety_stock"):
            return _errors(
                Failure("The quantity name is invalid.", ["input", "name"], "INVALID_QUANTITY_NAME")
            )
        if reason not in SET_REASONS:
            return _errors(Failure("The specified reason is invalid.", ["input", "reason"], "INVALID_REASON"))
        targets, failures = self._targets(name, data["changes"], "changes", absolute=False)
        if failures:
            return _errors(*failures)
        return self._apply(name, data, targets)

    def _apply(
        self, name: str, data: dict[str, Any], targets: list[tuple[InventoryItem, Location, int]]
    ) -> dict[str, Any]:
        when = self.now()
        changes: list[dict[str, Any]] = []
        for item, location, delta in targets:
            level = self.level(item.legacy_resource_id, location.legacy_resource_id, create=True)
            self._change(level, name, delta, when)
            moved = [name] if name == "incoming" else [name, "available" if name == "on_hand" else "on_hand"]
            for changed in moved:
                changes.append(
                    {
                        "name": changed,
                        "delta": delta,
                        "quantityAfterChange": level.quantities[changed],
                        "item": level.item,
                        "location": level.location,
                        "ledgerDocumentUri": None,
                    }
                )
            if "available" in moved:
                self._emit("inventory_levels/update", payloads.inventory_level(level))
        group_id = self.next_id("InventoryAdjustmentGroup")

        def pick(ctx: Context, **args: Any) -> list[dict[str, Any]]:
            items = set(args.get("inventoryItemIds") or ())
            locations = set(args.get("locationIds") or ())
            names = set(args.get("quantityNames") or ())
            return [
                change
                for change in changes
                if (not items or change["item"].id in items)
                and (not locations or change["location"].id in locations)
                and (not names or change["name"] in names)
            ]

        group = {
            "__typename": "InventoryAdjustmentGroup",
            "id": gid("InventoryAdjustmentGroup", group_id),
            "createdAt": when,
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": pick,
            "app": None,
            "staffMember": None,
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    # --- orders ------------------------------------------------------------------------------------------

    def create_order(self, data: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
        """orderCreate: the payload (`order`, `userErrors`)."""
        behaviour = (options or {}).get("inventoryBehaviour") or "BYPASS"
        currency = data.get("currency") or self.shop.currency_code
        with self.lock:
            failures: list[Failure] = []
            lines: list[LineItem] = []
            claims: list[tuple[InventoryLevel, int, LineItem]] = []
            for index, entry in enumerate(data.get("lineItems") or []):
                path = ["order", "lineItems", str(index)]
                variant = None
                if entry.get("variantId"):
                    variant = self.variants.get(parse_gid(entry["variantId"], "ProductVariant") or -1)
                    if variant is None:
                        failures.append(Failure("invalid variant", [*path, "variantId"], "INVALID"))
                        continue
                price_set = entry.get("priceSet")
                price = _decimal(price_set["shopMoney"]["amount"]) if price_set else None
                if price is None:
                    if variant is None:
                        failures.append(
                            Failure(
                                "Price set is required for custom line items", [*path, "priceSet"], "INVALID"
                            )
                        )
                        continue
                    price = variant.price
                if variant is None and not entry.get("title"):
                    failures.append(Failure("Title can't be blank", [*path, "title"], "INVALID"))
                    continue
                quantity = int(entry["quantity"])
                if quantity < 1:
                    failures.append(
                        Failure("Quantity must be greater than or equal to 1", [*path, "quantity"], "INVALID")
                    )
                    continue
                tax_lines = [_tax_input(tax) for tax in entry.get("taxLines") or []]
                line = LineItem(
                    legacy_resource_id=self.next_id("LineItem"),
                    title=entry.get("title") or (variant.product.title if variant else ""),
                    variant_title=entry.get("variantTitle") or (variant.title if variant else None),
                    sku=entry.get("sku") or (variant.sku if variant else None),
                    vendor=entry.get("vendor") or (variant.product.vendor if variant else None),
                    quantity=quantity,
                    price=price,
                    variant=variant,
                    tax_lines=tax_lines,
                    requires_shipping=entry.get("requiresShipping", True) is not False,
                    taxable=entry.get("taxable", True) is not False,
                )
                lines.append(line)
                if variant is not None and behaviour != "BYPASS" and variant.inventory_item.tracked:
                    level = self._claim_level(variant.inventory_item)
                    if level is None or (
                        behaviour == "DECREMENT_OBEYING_POLICY"
                        and variant.inventory_policy == "DENY"
                        and level.available < quantity
                    ):
                        failures.append(
                            Failure(
                                f"Unable to claim inventory for {variant.product.title}",
                                [*path, "variantId"],
                                "INVENTORY_CLAIM_FAILED",
                            )
                        )
                        continue
                    claims.append((level, quantity, line))
            if not lines and not failures:
                failures.append(
                    Failure("Line items must have at least one line item", ["order", "lineItems"], "INVALID")
                )
            for index, tax in enumerate(data.get("taxLines") or []):
                if tax.get("rate") is None:
                    failures.append(
                        Failure(
                            "Tax line rate is missing",
                            ["order", "taxLines", str(index), "rate"],
                            "TAX_LINE_RATE_MISSING",
                        )
                    )
            if failures:
                return {"order": None, "userErrors": [f.as_json() for f in failures]}
            now = self.now()
            processed = _parse_time(data["processedAt"]) if data.get("processedAt") else now
            order = Order(
                legacy_resource_id=self.next_id("Order"),
                number=next(self._order_numbers),
                email=data.get("email"),
                currency_code=currency,
                line_items=lines,
                tax_lines=[_tax_input(tax) for tax in data.get("taxLines") or []],
                shipping_lines=[
                    {
                        "title": line.get("title"),
                        "code": line.get("code"),
                        "price": str(
                            _decimal(line["priceSet"]["shopMoney"]["amount"])
                            if line.get("priceSet")
                            else Decimal(0)
                        ),
                    }
                    for line in data.get("shippingLines") or []
                ],
                transactions=[],
                shipping_address=data.get("shippingAddress"),
                billing_address=data.get("billingAddress"),
                tags=sorted({tag.strip() for tag in data.get("tags") or [] if tag.strip()}),
                source_identifier=data.get("sourceIdentifier"),
                source_name=data.get("sourceName"),
                note=data.get("note"),
                taxes_included=bool(data.get("taxesIncluded")),
                test=bool(data.get("test")),
                created_at=now,
                updated_at=now,
                processed_at=processed or now,
            )
            for entry in data.get("transactions") or []:
                amount = _decimal(entry["amountSet"]["shopMoney"]["amount"]) or Decimal(0)
                order.transactions.append(
                    Transaction(
                        legacy_resource_id=self.next_id("OrderTransaction"),
                        kind=entry.get("kind") or "SALE",
                        status=entry.get("status") or "SUCCESS",
                        gateway=entry.get("gateway") or "manual",
                        amount=amount,
                        created_at=now,
                        processed_at=(_parse_time(entry["processedAt"]) if entry.get("processedAt") else None)
                        or now,
                        test=bool(entry.get("test")),
                    )
                )
            for level, quantity, line in claims:
                self._change(level, "available", -quantity, now)
                self._change(level, "committed", quantity, now)
                line.committed = quantity
            self.orders[order.legacy_resource_id] = order
            body = payloads.order(order)
            self._emit("orders/create", body)
            if order.financial_status == "PAID":
                self._emit("orders/paid", body)
            for level, _, _ in claims:
                self._emit("inventory_levels/update", payloads.inventory_level(level))
            return {"order": order, "userErrors": []}

    def _claim_level(self, item: InventoryItem) -> InventoryLevel | None:
        level = item.levels.get(self.primary_location.legacy_resource_id)
        if level is not None:
            return level
        return next(iter(item.levels.values()), None)

    def cancel_order(
        self,
        order_id: int | str,
        *,
        reason: str = "OTHER",
        restock: bool = False,
        refund: bool = False,
        staff_note: str | None = None,
    ) -> tuple[Job | None, list[Failure]]:
        """orderCancel: queues a job that cancels the order after `job_delay` seconds (or on `run_jobs`)."""
        with self.lock:
            order = self.orders.get(_number(order_id, "Order"))
            if order is None:
                return None, [Failure("Order does not exist", ["orderId"], "NOT_FOUND")]
            if order.cancelled_at is not None:
                return None, [Failure("Order has already been cancelled", ["orderId"], "INVALID")]
            if order.fulfillment_status == "FULFILLED":
                return None, [Failure("Cannot cancel a fulfilled order", ["orderId"], "INVALID")]
            job = Job(
                id=f"gid://shopify/Job/{uuid.uuid4()}", order=order, run_at=self.clock() + self.job_delay
            )
            self.jobs[job.id] = job
            self._pending_cancellations[job.id] = {
                "reason": reason,
                "restock": restock,
                "refund": refund,
                "note": staff_note,
            }
        timer = threading.Timer(self.job_delay, self.run_jobs)
        timer.daemon = True
        timer.start()
        return job, []

    def run_jobs(self, *, force: bool = False) -> None:
        """Finish the asynchronous jobs whose time has come (all of them with `force`)."""
        with self.lock:
            now = self.clock()
            for job_id, job_args in list(self._pending_cancellations.items()):
                job = self.jobs[job_id]
                if not force and job.run_at > now:
                    continue
                del self._pending_cancellations[job_id]
                if job.order is not None:
                    self._cancel(job.order, **job_args)
                job.done, job.status = True, "SUCCEEDED"

    def _cancel(self, order: Order, *, reason: str, restock: bool, refund: bool, note: str | None) -> None:
        when = self.now()
        order.cancelled_at = order.closed_at = order.updated_at = when
        order.cancel_reason = reason
        touched: list[InventoryLevel] = []
        if restock:
            for line in order.line_items:
                if line.variant is not None and line.committed > 0:
                    level = self._claim_level(line.variant.inventory_item)
                    if level is not None:
                        self._change(level, "committed", -line.committed, when)
                        self._change(level, "available", line.committed, when)
                        line.committed = 0
                        touched.append(level)
        if refund and order.received > 0:
            self._refund(
                order,
                {
                    line.legacy_resource_id: line.quantity - line.refunded_quantity
                    for line in order.line_items
                },
                order.received,
                False,
                note,
                when,
            )
        body = payloads.order(order)
        self._emit("orders/cancelled", body)
        self._emit("orders/updated", body)
        for level in touched:
            self._emit("inventory_levels/update", payloads.inventory_level(level))

    def fulfill_order(
        self,
        order_id: int | str,
        *,
        lines: dict[int, int] | None = None,
        tracking_number: str | None = None,
        tracking_company: str | None = None,
    ) -> Order:
        """Fulfil lines (line item id -> quantity; all open quantities by default): committed and on_hand drop.
        Sends fulfillments/create, orders/fulfilled or orders/partially_fulfilled, and orders/updated."""
        with self.lock:
            order = self.order(order_id)
            when = self.now()
            chosen = lines or {
                line.legacy_resource_id: line.quantity - line.refunded_quantity - line.fulfilled_quantity
                for line in order.line_items
            }
            by_id = {line.legacy_resource_id: line for line in order.line_items}
            done: list[int] = []
            for line_id, quantity in chosen.items():
                line = by_id[line_id]
                quantity = min(quantity, line.quantity - line.refunded_quantity - line.fulfilled_quantity)
                if quantity <= 0:
                    continue
                line.fulfilled_quantity += quantity
                done.append(line_id)
                if line.variant is not None:
                    level = self._claim_level(line.variant.inventory_item)
                    shipped = min(quantity, line.committed)
                    if level is not None and shipped:
                        self._change(level, "committed", -shipped, when)
                        line.committed -= shipped
                        line.consumed += shipped
            fulfillment = {
                "id": self.next_id("Fulfillment"),
                "created_at": when,
                "lines": done,
                "tracking_number": tracking_number,
                "tracking_company": tracking_company,
            }
            order.fulfillments.append(fulfillment)
            order.updated_at = when
            body = payloads.order(order)
            fulfilled_body = next(f for f in body["fulfillments"] if f["id"] == fulfillment["id"])
            self._emit("fulfillments/create", fulfilled_body)
            status = order.fulfillment_status
            self._emit("orders/fulfilled" if status == "FULFILLED" else "orders/partially_fulfilled", body)
            self._emit("orders/updated", body)
            return order

    def refund_order(
        self,
        order_id: int | str,
        *,
        lines: dict[int, int] | None = None,
        amount: Decimal | str | None = None,
        restock: bool = True,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Refund lines (line item id -> quantity; everything by default) with an optional amount; restocking
        returns the quantities to `available`. Sends refunds/create, orders/updated, inventory_levels/update."""
        with self.lock:
            order = self.order(order_id)
            chosen = lines or {
                line.legacy_resource_id: line.quantity - line.refunded_quantity for line in order.line_items
            }
            by_id = {line.legacy_resource_id: line for line in order.line_items}
            everything = all(
                chosen.get(line.legacy_resource_id, 0) >= line.quantity - line.refunded_quantity
                for line in order.line_items
            )
            if amount is not None:
                value = Decimal(str(amount))
            elif everything:
                value = order.received
            else:
                value = sum(
                    (by_id[line_id].price * quantity for line_id, quantity in chosen.items()), Decimal(0)
                )
            return self._refund(order, chosen, value, restock, note, self.now())

    def _refund(
        self,
        order: Order,
        chosen: dict[int, int],
        value: Decimal,
        restock: bool,
        note: str | None,
        when: datetime,
    ) -> dict[str, Any]:
        by_id = {line.legacy_resource_id: line for line in order.line_items}
        touched: list[InventoryLevel] = []
        for line_id, quantity in chosen.items():
            line = by_id[line_id]
            line.refunded_quantity += quantity
            if restock and line.variant is not None:
                level = self._claim_level(line.variant.inventory_item)
                from_committed = min(quantity, line.committed)
                returned = min(quantity - from_committed, line.consumed)
                if level is not None and from_committed + returned:
                    self._change(level, "committed", -from_committed, when)
                    self._change(level, "available", from_committed + returned, when)
                    line.committed -= from_committed
                    line.consumed -= returned
                    touched.append(level)
        transaction = Transaction(
            self.next_id("OrderTransaction"), "REFUND", "SUCCESS", "manual", value, when, when
        )
        order.transactions.append(transaction)
        entry = {
            "id": self.next_id("Refund"),
            "created_at": when,
            "note": note,
            "amount": value,
            "restock": restock,
            "lines": dict(chosen),
            "transaction_id": transaction.legacy_resource_id,
            "location_id": self.primary_location.legacy_resource_id if restock else None,
        }
        order.refunds.append(entry)
        order.updated_at = when
        self._emit("refunds/create", payloads.refund(order, entry))
        self._emit("orders/updated", payloads.order(order))
        for level in touched:
            self._emit("inventory_levels/update", payloads.inventory_level(level))
        return entry

    # --- webhook subscriptions ---------------------------------------------------------------------------

    def add_subscription(self, topic: str, uri: str, **options: Any) -> WebhookSubscription:
        with self.lock:
            when = self.now()
            subscription = WebhookSubscription(
                self.next_id("WebhookSubscription"), topic, uri, when, when, **options
            )
            self.subscriptions[subscription.legacy_resource_id] = subscription
            return subscription

    def remove_subscription(self, subscription_id: int | str) -> WebhookSubscription | None:
        with self.lock:
            return self.subscriptions.pop(_number(subscription_id, "WebhookSubscription"), None)

    def subscribers(self, topic: str, body: dict[str, Any] | None = None) -> list[WebhookSubscription]:
        """Subscriptions to `topic` whose `filter` (Shopify search syntax over the body) lets `body` through."""
        enum = topic.upper().replace("/", "_")
        with self.lock:
            found = [s for s in self.subscriptions.values() if s.topic == enum]
        if body is None:
            return found
        return [s for s in found if not s.filter or search(s.filter, PayloadFields())(body)]


def _errors(*failures: Failure) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None, "userErrors": [f.as_json() for f in failures]}


def _tax_input(tax: dict[str, Any]) -> dict[str, Any]:
    price = tax.get("priceSet")
    return {
        "title": tax.get("title"),
        "rate": tax.get("rate"),
        "price": str(_decimal(price["shopMoney"]["amount"]) if price else Decimal(0)),
        "channel_liable": bool(tax.get("channelLiable")),
    }


def _ean13(number: int) -> str:
    body = f"{200000000000 + number % 100000000000:012d}"
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)
