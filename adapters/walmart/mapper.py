"""Pure functions between Walmart Marketplace JSON and Storelink's domain types, in both directions.

Walmart's JSON is read defensively: quantities and line numbers come as strings or numbers, or as
`{"unit": "EACH", "amount": ...}` objects; dates are epoch milliseconds (ISO strings in webhooks); an item's
`shelf` is a JSON-encoded string; `upc` may be empty; prices are JSON numbers (decoded as Decimal, never
float). Nothing here calls the network.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from adapters.walmart import const
from connector.domain.catalog import InventoryLevel, Product, ProductStatus, Variant
from connector.domain.money import Money
from connector.domain.orders import Address, Order

MAX_ID_CHARS: Final = 255
_CURRENCY = re.compile(r"[A-Z]{3}")
_ALNUM = re.compile(r"[A-Za-z0-9]*")
_COUNTRIES: Final = {"US": "USA", "USA": "USA", "PR": "PRI", "PRI": "PRI"}


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
    )


def build_product(parts: Sequence[ItemParts], title: str | None = None) -> Product:
    """A product of consecutive items of one variant group (or a single item). Its status is the best of
    its variants'; its title `title` when given (the group's title fixed earlier in the pass)."""
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


# -- Walmart-originated orders -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalmartOrderLine:
    line_number: str
    sku: str
    quantity: int
    statuses: tuple[tuple[str, int], ...] = ()
    """(status, quantity) entries of the line: one line can be split over several statuses."""

    @property
    def cancelled_quantity(self) -> int:
        return sum(amount for status, amount in self.statuses if status.upper() == "CANCELLED")


@dataclass(frozen=True, slots=True)
class WalmartOrder:
    """A purchase order placed on Walmart: what the platform side needs to lower its stock."""

    purchase_order_id: str
    customer_order_id: str | None
    ordered_at: datetime | None
    lines: tuple[WalmartOrderLine, ...]
    ship_node_type: str | None = None

    @property
    def order_ref(self) -> str:
        return self.purchase_order_id

    def sku_quantities(self, *, exclude_cancelled: bool = True) -> dict[str, int]:
        """Units per SKU (cancelled units left out unless asked)."""
        totals: dict[str, int] = {}
        for line in self.lines:
            amount = line.quantity - (line.cancelled_quantity if exclude_cancelled else 0)
            if amount > 0:
                totals[line.sku] = totals.get(line.sku, 0) + amount
        return totals


def _list_of(container: object, *keys: str) -> list[Any]:
    """`container[k1][k2]...` when it is a list (a single object taken as a list of one)."""
    value = container
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return [value]
    return list(value) if isinstance(value, list) else []


def parse_order(order: Mapping[str, Any]) -> WalmartOrder:
    """One `order` of `GET /v3/orders`; ValueError when unusable."""
    po = ref(order.get("purchaseOrderId"), "purchaseOrderId")
    lines: list[WalmartOrderLine] = []
    for line in _list_of(order, "orderLines", "orderLine"):
        if not isinstance(line, Mapping):
            continue
        item = line.get("item")
        sku = ref(item.get("sku") if isinstance(item, Mapping) else None, f"{po} line sku")
        number = text(line.get("lineNumber")) or str(len(lines) + 1)
        statuses: list[tuple[str, int]] = []
        for entry in _list_of(line, "orderLineStatuses", "orderLineStatus"):
            if isinstance(entry, Mapping) and text(entry.get("status")):
                try:
                    amount = quantity(entry.get("statusQuantity"))
                except ValueError:
                    amount = 0
                statuses.append((str(text(entry.get("status"))), amount))
        lines.append(
            WalmartOrderLine(
                line_number=number,
                sku=sku,
                quantity=max(0, quantity(line.get("orderLineQuantity"))),
                statuses=tuple(statuses),
            )
        )
    ship_node = order.get("shipNode")
    return WalmartOrder(
        purchase_order_id=po,
        customer_order_id=text(order.get("customerOrderId")),
        ordered_at=epoch_ms(order.get("orderDate")),
        lines=tuple(lines),
        ship_node_type=text(ship_node.get("type")) if isinstance(ship_node, Mapping) else None,
    )


def orders_of(page: object) -> Iterator[Mapping[str, Any]]:
    """The orders of a `GET /v3/orders` page: `list.elements.order[]`."""
    for order in _list_of(page, "list", "elements", "order"):
        if isinstance(order, Mapping):
            yield order


# -- Multichannel Solutions orders ---------------------------------------------------------------------------


def seller_order_id(idempotency_key: str, prefix: str = const.DEFAULT_SELLER_ORDER_PREFIX) -> str:
    """A deterministic `sellerOrderId` for a key: `prefix` and the start of the key's SHA-256 in base32,
    18 characters of [A-Z0-9] in all."""
    if not _ALNUM.fullmatch(prefix) or len(prefix) > 6:
        raise ValueError("seller order prefix must be at most 6 letters or digits")
    digest = base64.b32encode(hashlib.sha256(idempotency_key.encode("utf-8")).digest()).decode("ascii")
    return (prefix.upper() + digest)[: const.SELLER_ORDER_ID_LENGTH]


def mcs_header() -> dict[str, Any]:
    return {"headerAttributes": {"martId": const.MCS_MART_ID, "buId": const.MCS_BU_ID}}


def _name(full: str) -> dict[str, str]:
    first, _, last = full.strip().partition(" ")
    return {"firstName": first or full.strip(), "lastName": last.strip() or first or full.strip()}


def _address(address: Address) -> dict[str, str]:
    country = _COUNTRIES.get(address.country_code.upper())
    if country is None:
        raise ValueError(f"Walmart Multichannel ships within the US only, not to {address.country_code!r}")
    state = address.province_code.strip().upper()
    if len(state) != 2:
        raise ValueError("shipping address needs a 2-letter state code")
    zip_code = address.postal_code.strip()[:5]
    if len(zip_code) != 5 or not zip_code.isdigit():
        raise ValueError(f"shipping address postal code {address.postal_code!r} is not a US ZIP code")
    found = {
        "line1": address.line1.strip(),
        "city": address.city.strip(),
        "state": state,
        "country": country,
        "zip": zip_code,
        "addressType": "RESIDENTIAL",
    }
    if address.line2.strip():
        found["line2"] = address.line2.strip()
    if not found["line1"] or not found["city"]:
        raise ValueError("shipping address needs a street line and a city")
    return found


def mcs_order_payload(
    order: Order,
    seller_order: str,
    channel_id: str,
    placed_at: datetime,
    shipping_method: str = "STANDARD",
) -> dict[str, Any]:
    """The `POST /v3/fulfillment/orders-fulfillments` body of a platform order; ValueError when the order
    cannot be fulfilled through Multichannel (no US address, too many lines).

    Charges are sent as 0: Walmart's preferred value, they are informational and billed to no one.
    """
    address = order.shipping_address
    if address is None:
        raise ValueError("a Multichannel order needs a shipping address")
    if not order.lines:
        raise ValueError("order has no lines")
    if len(order.lines) > const.MAX_SELLER_LINE_ID:
        raise ValueError("order has too many lines")
    contact: dict[str, Any] = {"name": _name(address.name)}
    phone = "".join(ch for ch in address.phone if ch.isdigit() or ch == "+")[:15]
    if phone:
        contact["phone"] = phone
    if order.buyer_email:
        contact["email"] = order.buyer_email
    shipping_to = {"contact": contact, "address": _address(address)}
    items = []
    for number, line in enumerate(order.lines, start=1):
        if line.quantity <= 0:
            raise ValueError(f"line {number} has quantity {line.quantity}")
        items.append(
            {
                "sellerLineId": str(number),
                "fulfillmentType": "DELIVERY",
                "shippingMethod": shipping_method,
                "itemDetail": {"sku": line.variant_external_id},
                "qty": {"unitOfMeasure": "EACH", "measurementValue": line.quantity},
                "shippingTo": shipping_to,
                "chargeDetails": [
                    {
                        "chargeCategory": "PRODUCT",
                        "chargeName": "Sale Price",
                        "chargePerUnit": {"currencyAmount": 0, "currencyUnit": order.currency},
                        "taxDetails": {"taxPerLine": {"currencyAmount": 0, "currencyUnit": order.currency}},
                    }
                ],
            }
        )
    stamp = placed_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "header": mcs_header(),
        "payload": {
            "orderChannelId": channel_id,
            "sellerOrderId": seller_order,
            "orderPlacedTime": stamp,
            "needsConfirmation": False,
            "partialFulfillments": False,
            "customer": {"contact": contact},
            "orderItems": items,
        },
    }


@dataclass(frozen=True, slots=True)
class McsStatus:
    """A Multichannel order as the status endpoint reports it."""

    seller_order_id: str
    status: str
    purchase_order_ids: tuple[str, ...] = ()
    lines: tuple[tuple[str, int], ...] = ()
    """(sellerLineId, quantity) of its lines, as far as the answer names them."""

    @property
    def rejected(self) -> bool:
        return self.status in const.MCS_REJECTED_STATUSES

    @property
    def cancelled(self) -> bool:
        return self.status in const.MCS_CANCELLED_STATUSES

    @property
    def pending(self) -> bool:
        return self.status in const.MCS_PENDING_STATUSES or not self.status


def _line_quantity(line: Mapping[str, Any]) -> int | None:
    for key in ("qty", "orderedQty", "orderLineQuantity", "quantity"):
        if key in line:
            try:
                return quantity(line[key])
            except ValueError:
                return None
    total = 0
    for info in _list_of(line, "orderLineQuantityInfo"):
        if isinstance(info, Mapping):
            for key in ("statusQuantity", "qty", "quantity"):
                if key in info:
                    with contextlib.suppress(ValueError):
                        total += quantity(info[key])
                    break
    return total or None


def mcs_status(body: object, seller_order: str) -> McsStatus | None:
    """The entry of a status answer (`payload[]`) for `seller_order`; None when it has none."""
    entries = _list_of(body, "payload")
    if not entries and isinstance(body, Mapping):
        entries = _list_of(body, "payload", "orders")
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        found = text(entry.get("sellerOrderId") or entry.get("customerOrderNo"))
        if found != seller_order:
            continue
        purchase_orders = []
        for shipment in _list_of(entry, "shipments"):
            if isinstance(shipment, Mapping) and text(shipment.get("purchaseOrderId")):
                purchase_orders.append(str(text(shipment.get("purchaseOrderId"))))
        lines: list[tuple[str, int]] = []
        for line in _list_of(entry, "orderLines"):
            if not isinstance(line, Mapping):
                continue
            line_id = text(line.get("sellerLineId") or line.get("lineId") or line.get("fulfillerLineId"))
            amount = _line_quantity(line)
            if line_id and amount:
                lines.append((line_id, amount))
        return McsStatus(
            seller_order_id=seller_order,
            status=str(text(entry.get("status") or entry.get("orderStatus")) or "").upper(),
            purchase_order_ids=tuple(dict.fromkeys(purchase_orders)),
            lines=tuple(lines),
        )
    return None


def mcs_cancel_payload(seller_order: str, lines: Sequence[tuple[str, int]]) -> dict[str, Any]:
    return {
        "header": mcs_header(),
        "payload": {
            "sellerOrderId": seller_order,
            "orderItems": [
                {"sellerLineId": line_id, "qty": {"unitOfMeasure": "EACH", "measurementValue": amount}}
                for line_id, amount in lines
            ],
        },
    }


def channels(body: object) -> list[tuple[str, str | None, bool]]:
    """(orderChannelId, orderChannelName, active) of a channel-details answer."""
    found: list[tuple[str, str | None, bool]] = []
    candidates = (
        _list_of(body, "payload", "mcsDetails") or _list_of(body, "mcsDetails") or _list_of(body, "payload")
    )
    for entry in candidates:
        if not isinstance(entry, Mapping):
            continue
        channel_id = text(entry.get("orderChannelId"))
        if channel_id:
            found.append((channel_id, text(entry.get("orderChannelName")), entry.get("active") is not False))
    return found
