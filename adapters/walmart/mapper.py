"""Pure functions between Walmart Marketplace item, inventory and feed JSON and Storelink's domain types, in
both directions, and the scalar readers every Walmart mapping uses (orders: `order_mapper`).

Walmart's JSON is read defensively: quantities and line numbers come as strings or numbers, or as
`{"unit": "EACH", "amount": ...}` objects; dates are epoch milliseconds (ISO strings in webhooks); an item's
`shelf` is a JSON-encoded string; `upc` may be empty; prices are JSON numbers (decoded as Decimal, never
float). Nothing here calls the network.

Collections: an item's place in Walmart's taxonomy is what its wire format has of one. Its `shelf` (the
category path, `["Home Page", "Clothing", "Men", ...]`, the "Home Page" root left out) is one collection and
its `productType` ("Outerwear Coats, Jackets & Vests") another; their ids are `shelf:<handle>` and
`product-type:<handle>`, their handles made from the path or the type. Tags: Walmart's item API has no field
for a seller's own labels, so Walmart products carry none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from adapters.walmart import const
from connector.domain.catalog import (
    CollectionRef,
    InventoryLevel,
    Product,
    ProductStatus,
    Variant,
    clean_collections,
    handle_of,
)
from connector.domain.money import Money

MAX_ID_CHARS: Final = 255
SHELF_ROOT: Final = "Home Page"
"""The first step of every shelf path: the site itself, not a category."""
_CURRENCY = re.compile(r"[A-Z]{3}")


# -- scalars -------------------------------------------------------------------------------------------------


def text(value: object) -> str | None:
    """A non-empty trimmed string, numbers as their text; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def ref(value: object, name: str) -> str:
    """An id (SKU, order number) as text; ValueError when missing or absurdly long."""
    found = text(value)
    if found is None:
        raise ValueError(f"{name} is missing")
    if len(found) > MAX_ID_CHARS:
        raise ValueError(f"{name} is longer than {MAX_ID_CHARS} characters")
    return found


def quantity(value: object) -> int:
    """A whole quantity from `3`, `"3"`, `"3.0"`, `Decimal(3)` or `{"amount": "3"}`/`{"measurementValue": 3}`."""
    if isinstance(value, Mapping):
        for key in ("amount", "measurementValue", "value"):
            if key in value:
                return quantity(value[key])
        raise ValueError(f"quantity {dict(value)!r} has no amount")
    if isinstance(value, bool) or value is None:
        raise ValueError(f"quantity {value!r} is not a number")
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | int | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"quantity {value!r} is not a whole number")
    return int(number)


def epoch_ms(value: object) -> datetime | None:
    """A time from epoch milliseconds (number or digits) or an ISO 8601 string; None when absent.

    ValueError when present but unreadable.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is not a time")
    if isinstance(value, int | Decimal) or (isinstance(value, str) and value.strip().isdigit()):
        millis = int(Decimal(str(value).strip()))
        return datetime.fromtimestamp(millis / 1000, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"time {value[:40]!r} is neither epoch milliseconds nor ISO 8601") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise ValueError(f"time {value!r} is not a time")


def money(value: object, default_currency: str) -> Money:
    """`{"currency": "USD", "amount": 59.99}` (amount a Decimal, number or string) as Money."""
    if not isinstance(value, Mapping):
        raise ValueError("price is missing")
    amount = value.get("amount")
    if amount is None:
        amount = value.get("currencyAmount")
    currency = text(value.get("currency") or value.get("currencyUnit")) or default_currency
    currency = currency.upper()
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"price currency {currency!r} is not an ISO 4217 code")
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal | str):
        raise ValueError(f"price amount {amount!r} is not a number")
    try:
        decimal = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"price amount {amount!r} is not a number") from None
    if not decimal.is_finite() or decimal < 0:
        raise ValueError(f"price amount {amount!r} is not a non-negative number")
    return Money.from_decimal(decimal, currency)


def shelf(value: object) -> tuple[str, ...]:
    """The category path: `shelf` is a JSON-encoded array of strings (a real array is taken too)."""
    items: object = value
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except ValueError:
            return (value.strip(),) if value.strip() else ()
    if not isinstance(items, list):
        return ()
    return tuple(str(item).strip() for item in items if isinstance(item, str) and item.strip())


# -- catalog -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemParts:
    """One Walmart item: its variant, and what the product it belongs to is made of."""

    product_id: str
    variant: Variant
    title: str
    status: ProductStatus
    extra: tuple[tuple[str, str], ...]
    is_primary: bool = False
    collections: tuple[CollectionRef, ...] = ()


def item_status(item: Mapping[str, Any]) -> ProductStatus:
    """RETIRED/ARCHIVED items are archived; published ones active; anything else (unpublished, in
    progress, system problem) a draft."""
    lifecycle = str(item.get("lifecycleStatus") or "").upper()
    if lifecycle in ("RETIRED", "ARCHIVED"):
        return ProductStatus.ARCHIVED
    published = item.get("publishedStatus")
    if isinstance(published, Mapping):
        published = published.get("status")
    return ProductStatus.ACTIVE if str(published or "").upper() == "PUBLISHED" else ProductStatus.DRAFT


def _grouping(item: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], ...], bool]:
    info = item.get("variantGroupInfo")
    if not isinstance(info, Mapping):
        return (), False
    options: list[tuple[str, str]] = []
    attributes = info.get("groupingAttributes")
    if isinstance(attributes, list):
        for attribute in attributes:
            if not isinstance(attribute, Mapping):
                continue
            name, value = text(attribute.get("name")), text(attribute.get("value"))
            if name and value:
                options.append((name, value))
    return tuple(options), info.get("isPrimaryVariant") is True


def categories(item: Mapping[str, Any]) -> tuple[CollectionRef, ...]:
    """The collections of an item: its shelf path and its product type, when it has them."""
    found: list[CollectionRef] = []
    path = shelf(item.get("shelf"))
    if path and path[0] == SHELF_ROOT:
        path = path[1:]
    if path:
        title = " > ".join(path)
        found.append(CollectionRef(f"shelf:{handle_of(title)}", handle_of(title), title))
    kind = text(item.get("productType"))
    if kind:
        found.append(CollectionRef(f"product-type:{handle_of(kind)}", handle_of(kind), kind))
    return clean_collections(ref for ref in found if ref.handle)


def parse_item(item: Mapping[str, Any], default_currency: str) -> ItemParts:
    """One entry of `ItemResponse[]` (or a `responseRecord`); ValueError naming what is unusable."""
    sku = ref(item.get("sku"), "sku")
    title = text(item.get("productName")) or sku
    group = text(item.get("variantGroupId"))
    options, primary = _grouping(item)
    barcode = text(item.get("gtin")) or text(item.get("upc"))
    status = item_status(item)
    variant = Variant(
        external_id=sku,
        title=" / ".join(value for _, value in options) or title,
        price=money(item.get("price"), default_currency),
        sku=sku,
        barcode=barcode,
        status=status,
        options=options,
    )
    extra: list[tuple[str, str]] = []
    for key, name in (("wpid", "wpid"), ("productType", "product_type"), ("mart", "mart")):
        found = text(item.get(key))
        if found:
            extra.append((name, found))
    path = shelf(item.get("shelf"))
    if path:
        extra.append(("shelf", " > ".join(path)))
    return ItemParts(
        product_id=group or sku,
        variant=variant,
        title=title,
        status=status,
        extra=tuple(extra),
        is_primary=primary or group is None,
        collections=categories(item),
    )


def build_product(
    parts: Sequence[ItemParts],
    title: str | None = None,
    collections: tuple[CollectionRef, ...] | None = None,
) -> Product:
    """A product of consecutive items of one variant group (or a single item). Its status is the best of
    its variants'; its title `title` and its collections `collections` when given (the group's, fixed earlier
    in the pass), else those of its primary item."""
    first = next((part for part in parts if part.is_primary), parts[0])
    statuses = {part.status for part in parts}
    status = (
        ProductStatus.ACTIVE
        if ProductStatus.ACTIVE in statuses
        else ProductStatus.DRAFT
        if ProductStatus.DRAFT in statuses
        else ProductStatus.ARCHIVED
    )
    # A variant group may come in parts: only what every part agrees on is product-level.
    extra = first.extra if first.product_id == first.variant.external_id else ()
    return Product(
        external_id=first.product_id,
        title=title or first.title,
        variants=tuple(part.variant for part in parts),
        status=status,
        extra=extra,
        collections=first.collections if collections is None else collections,
    )


def items_of(page: object) -> list[Mapping[str, Any]]:
    """The items of a `GET /v3/items` page (`ItemResponse[]`) or a single-item answer (`responseRecord`)."""
    if not isinstance(page, Mapping):
        return []
    found = page.get("ItemResponse")
    if found is None:
        found = page.get("responseRecord")
    if isinstance(found, Mapping):
        found = [found]
    if not isinstance(found, list):
        return []
    return [item for item in found if isinstance(item, Mapping)]


def next_cursor(page: object) -> str | None:
    """The `nextCursor` of a page (top level or under `meta`); None when missing or empty (the end)."""
    if not isinstance(page, Mapping):
        return None
    cursor = page.get("nextCursor")
    if cursor is None and isinstance(page.get("meta"), Mapping):
        cursor = page["meta"].get("nextCursor")
    if cursor is None and isinstance(page.get("list"), Mapping):
        meta = page["list"].get("meta")
        cursor = meta.get("nextCursor") if isinstance(meta, Mapping) else None
    return cursor.strip() if isinstance(cursor, str) and cursor.strip() else None


# -- inventory -----------------------------------------------------------------------------------------------


def level_from_inventory(
    body: Mapping[str, Any], sku: str, location: str, when: datetime | None = None
) -> InventoryLevel:
    """`GET /v3/inventory?sku=` → `{"sku", "quantity": {"unit", "amount"}}`."""
    return InventoryLevel(sku, location, max(0, quantity(body.get("quantity"))), when)


def level_from_nodes(
    body: Mapping[str, Any], sku: str, ship_node: str | None, when: datetime | None = None
) -> InventoryLevel | None:
    """`GET /v3/inventories/{sku}` → `availToSellQty` of `ship_node`, or summed over every node at the default
    location when `ship_node` is None; None when the node is not listed."""
    nodes = body.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError("inventory answer has no nodes")
    total = 0
    seen = False
    for node in nodes:
        if not isinstance(node, Mapping):
            continue
        name = text(node.get("shipNode"))
        if ship_node is not None and name != ship_node:
            continue
        available = node.get("availToSellQty")
        if available is None:
            continue
        total += max(0, quantity(available))
        seen = True
    if ship_node is not None and not seen:
        return None
    return InventoryLevel(sku, ship_node or const.DEFAULT_LOCATION, total, when)


def inventory_body(sku: str, amount: int) -> dict[str, Any]:
    return {"sku": sku, "quantity": {"unit": "EACH", "amount": max(0, amount)}}


def node_inventory_body(ship_node: str, amount: int) -> dict[str, Any]:
    return {
        "inventories": {"nodes": [{"shipNode": ship_node, "inputQty": {"unit": "EACH", "amount": amount}}]}
    }


def node_results(body: object) -> list[tuple[str, str]]:
    """(shipNode, status) of each node of a `PUT /v3/inventories/{sku}` answer."""
    nodes = body.get("nodes") if isinstance(body, Mapping) else None
    found: list[tuple[str, str]] = []
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, Mapping):
            found.append((text(node.get("shipNode")) or "?", text(node.get("status")) or "?"))
    return found


def inventory_feed(levels: Sequence[tuple[str, int]], ship_node: str | None) -> dict[str, Any]:
    """A bulk inventory feed: spec 1.4 (`feedType=inventory`, one node) without `ship_node`, else spec 1.5
    (`feedType=MP_INVENTORY`, per node)."""
    if ship_node is None:
        return {
            "InventoryHeader": {"version": "1.4"},
            "Inventory": [inventory_body(sku, amount) for sku, amount in levels],
        }
    return {
        "inventoryHeader": {"version": "1.5"},
        "inventory": [
            {
                "sku": sku,
                "shipNodes": [
                    {"shipNode": ship_node, "quantity": {"unit": "EACH", "amount": max(0, amount)}}
                ],
            }
            for sku, amount in levels
        ],
    }


@dataclass(frozen=True, slots=True)
class FeedStatus:
    feed_id: str
    status: str
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    processing: int = 0
    failures: tuple[tuple[str, str], ...] = ()
    """(sku, reason) of failed items, as far as the details were read."""

    @property
    def done(self) -> bool:
        return self.status in const.FEED_DONE_STATUSES


def _count(value: object) -> int:
    try:
        return quantity(value)
    except ValueError:
        return 0


def feed_status(feed_id: str, body: object) -> FeedStatus:
    """`GET /v3/feeds/{feedId}?includeDetails=true`."""
    if not isinstance(body, Mapping):
        raise ValueError("feed status is not an object")
    failures: list[tuple[str, str]] = []
    details = body.get("itemDetails")
    statuses = details.get("itemIngestionStatus") if isinstance(details, Mapping) else None
    for entry in statuses if isinstance(statuses, list) else []:
        if not isinstance(entry, Mapping):
            continue
        status = str(entry.get("ingestionStatus") or "").upper()
        if status and status not in ("SUCCESS", "INPROGRESS"):
            errors = entry.get("ingestionErrors")
            reason = json.dumps(errors, default=str)[:200] if errors else status
            failures.append((text(entry.get("sku")) or "?", reason))
    return FeedStatus(
        feed_id=text(body.get("feedId")) or feed_id,
        status=str(body.get("feedStatus") or "RECEIVED").upper(),
        received=_count(body.get("itemsReceived")),
        succeeded=_count(body.get("itemsSucceeded")),
        failed=_count(body.get("itemsFailed")),
        processing=_count(body.get("itemsProcessing")),
        failures=tuple(failures[:50]),
    )
