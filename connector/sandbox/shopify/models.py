"""The emulated store's records (shop, locations, products, variants, inventory, orders, webhook subscriptions,
bulk operations) and how each answers GraphQL fields: a `gql_<field>` method when the field needs work,
otherwise the snake_case attribute of the same name."""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final

from graphql import GraphQLError

if TYPE_CHECKING:
    from connector.sandbox.shopify.store import Context

QUANTITY_NAMES: Final = (
    "available",
    "on_hand",
    "committed",
    "reserved",
    "incoming",
    "damaged",
    "safety_stock",
    "quality_control",
)
MAX_PAGE: Final = 250


def gid(kind: str, number: int | str) -> str:
    return f"gid://shopify/{kind}/{number}"


def parse_gid(value: object, kind: str) -> int | None:
    """The numeric id of a `gid://shopify/<kind>/<n>` (query string ignored), or None."""
    if not isinstance(value, str):
        return None
    prefix = f"gid://shopify/{kind}/"
    if not value.startswith(prefix):
        return None
    digits = value[len(prefix) :].split("?", 1)[0]
    return int(digits) if digits.isdigit() else None


def iso(moment: datetime | None) -> str | None:
    """GraphQL DateTime: UTC with a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rest_time(moment: datetime | None) -> str | None:
    """REST/webhook timestamps: the shop's offset spelled out."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def money(amount: Decimal | str | int, currency: str) -> dict[str, str]:
    return {"amount": f"{Decimal(amount):.2f}", "currencyCode": currency}


def money_bag(amount: Decimal | str | int, currency: str) -> dict[str, dict[str, str]]:
    return {"shopMoney": money(amount, currency), "presentmentMoney": money(amount, currency)}


def encode_cursor(key: int, item: Any = None) -> str:
    """An opaque cursor like Shopify's: base64 of compact JSON with the last id and the sort value."""
    last_id = getattr(item, "legacy_resource_id", key)
    document = {"last_id": last_id, "last_value": str(key)}
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def _lazy_cursor(key: int, item: Any) -> Callable[..., str]:
    """A cursor computed only when a query selects it."""

    def cursor(ctx: Any, **_: Any) -> str:
        return encode_cursor(key, item)

    return cursor


def decode_cursor(cursor: str) -> int:
    try:
        return int(json.loads(base64.b64decode(cursor))["last_value"])
    except (ValueError, KeyError, TypeError) as error:
        raise GraphQLError(f"Invalid cursor for current pagination sort. {cursor}") from error


def paginate(
    items: Sequence[Any],
    ctx: Context,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool | None = False,
    key: Callable[[Any], int] = lambda item: item.legacy_resource_id,
) -> dict[str, Any]:
    """A Relay connection over `items` (sorted by `key` ascending), as Shopify pages it."""
    ordered = list(reversed(items)) if reverse else list(items)
    if not ctx.bulk:
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last")
        for name, value in (("first", first), ("last", last)):
            if value is not None and (value < 0 or value > MAX_PAGE):
                raise GraphQLError(f"The value of the argument `{name}` must be between 0 and {MAX_PAGE}.")
    keys = [key(item) if not reverse else -key(item) for item in ordered]
    start, stop = 0, len(ordered)
    if after is not None:
        mark = decode_cursor(after)
        start = bisect.bisect_right(keys, -mark if reverse else mark)
    if before is not None:
        mark = decode_cursor(before)
        stop = bisect.bisect_left(keys, -mark if reverse else mark)
    window = ordered[start:stop]
    has_next = has_previous = False
    if not ctx.bulk:
        if first is not None and len(window) > first:
            window, has_next = window[:first], True
        if last is not None and len(window) > last:
            window, has_previous = window[-last:], True
    has_next = has_next or stop < len(ordered)
    has_previous = has_previous or start > 0
    edges = [{"cursor": _lazy_cursor(key(item), item), "node": item} for item in window]
    return {
        "edges": edges,
        "nodes": window,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


class Record:
    """Common GraphQL behaviour: `id` is the GID, `legacyResourceId` the number as text."""

    typename: ClassVar[str] = ""
    legacy_resource_id: int

    @property
    def id(self) -> str:
        return gid(self.typename, self.legacy_resource_id)

    def gql_legacy_resource_id(self, ctx: Context, **_: Any) -> str:
        return str(self.legacy_resource_id)


@dataclass(eq=False)
class Location(Record):
    typename: ClassVar[str] = "Location"
    legacy_resource_id: int
    name: str
    created_at: datetime
    updated_at: datetime
    is_active: bool = True
    fulfills_online_orders: bool = True

    def gql_address(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {
            "address1": "1 Market St",
            "city": "San Francisco",
            "countryCode": "US",
            "zip": "94105",
            "country": "United States",
            "province": "California",
            "provinceCode": "CA",
            "formatted": [],
        }

    def gql_inventory_levels(self, ctx: Context, **args: Any) -> dict[str, Any]:
        levels = list(ctx.store.levels_at(self.legacy_resource_id))
        return paginate(levels, ctx, key=lambda level: level.item.legacy_resource_id, **_page(args))

    def gql_inventory_level(self, ctx: Context, **args: Any) -> InventoryLevel | None:
        item = ctx.store.inventory_items.get(parse_gid(args.get("inventoryItemId"), "InventoryItem") or -1)
        return item.levels.get(self.legacy_resource_id) if item else None


@dataclass(eq=False)
class InventoryLevel:
    typename: ClassVar[str] = "InventoryLevel"
    item: InventoryItem
    location: Location
    quantities: dict[str, int]
    created_at: datetime
    updated_at: datetime
    is_active: bool = True

    @property
    def id(self) -> str:
        return f"gid://shopify/InventoryLevel/{self.location.legacy_resource_id}?inventory_item_id={self.item.legacy_resource_id}"

    @property
    def available(self) -> int:
        return self.quantities.get("available", 0)

    def gql_quantities(self, ctx: Context, names: list[str], **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": f"gid://shopify/InventoryQuantity/{self.location.legacy_resource_id}"
                f"?inventory_item_id={self.item.legacy_resource_id}&name={name}",
                "name": name,
                "quantity": self.quantities.get(name, 0),
                "updatedAt": self.updated_at,
            }
            for name in names
            if name in QUANTITY_NAMES
        ]

    def gql_can_deactivate(self, ctx: Context, **_: Any) -> bool:
        return True


@dataclass(eq=False)
class InventoryItem(Record):
    typename: ClassVar[str] = "InventoryItem"
    legacy_resource_id: int
    sku: str | None
    created_at: datetime
    updated_at: datetime
    tracked: bool = True
    requires_shipping: bool = True
    variant: ProductVariant | None = None
    levels: dict[int, InventoryLevel] = field(default_factory=dict)

    def gql_inventory_levels(self, ctx: Context, **args: Any) -> dict[str, Any]:
        levels = sorted(self.levels.values(), key=lambda level: level.location.legacy_resource_id)
        return paginate(levels, ctx, key=lambda level: level.location.legacy_resource_id, **_page(args))

    def gql_inventory_level(self, ctx: Context, **args: Any) -> InventoryLevel | None:
        return self.levels.get(parse_gid(args.get("locationId"), "Location") or -1)

    def gql_variants(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate([self.variant] if self.variant else [], ctx, **_page(args))

    def gql_unit_cost(self, ctx: Context, **_: Any) -> None:
        return None

    def gql_measurement(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"id": gid("InventoryItemMeasurement", self.legacy_resource_id), "weight": None}

    def gql_duplicate_sku_count(self, ctx: Context, **_: Any) -> int:
        return 0

    def available(self) -> int:
        return sum(level.available for level in self.levels.values())


@dataclass(eq=False)
class ProductVariant(Record):
    typename: ClassVar[str] = "ProductVariant"
    legacy_resource_id: int
    product: Product
    title: str
    sku: str | None
    barcode: str | None
    price: Decimal
    compare_at_price: Decimal | None
    position: int
    options: list[tuple[str, str]]
    inventory_item: InventoryItem
    created_at: datetime
    updated_at: datetime
    taxable: bool = True
    inventory_policy: str = "DENY"

    def gql_price(self, ctx: Context, **_: Any) -> str:
        return f"{self.price:.2f}"

    def gql_compare_at_price(self, ctx: Context, **_: Any) -> str | None:
        return None if self.compare_at_price is None else f"{self.compare_at_price:.2f}"

    def gql_selected_options(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [
            {"name": name, "value": value, "optionValue": {"name": value}} for name, value in self.options
        ]

    def gql_inventory_quantity(self, ctx: Context, **_: Any) -> int:
        return self.inventory_item.available()

    def gql_sellable_online_quantity(self, ctx: Context, **_: Any) -> int:
        return max(0, self.inventory_item.available())

    def gql_available_for_sale(self, ctx: Context, **_: Any) -> bool:
        return self.product.status == "ACTIVE" and (
            self.inventory_policy == "CONTINUE" or self.inventory_item.available() > 0
        )

    def gql_display_name(self, ctx: Context, **_: Any) -> str:
        return f"{self.product.title} - {self.title}"

    def gql_requires_components(self, ctx: Context, **_: Any) -> bool:
        return False


@dataclass(eq=False)
class Product(Record):
    typename: ClassVar[str] = "Product"
    legacy_resource_id: int
    title: str
    handle: str
    description_html: str
    vendor: str
    product_type: str
    status: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    variants: list[ProductVariant] = field(default_factory=list)

    def gql_variants(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate(self.variants, ctx, **_page(args))

    def gql_variants_count(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"count": len(self.variants), "precision": "EXACT"}

    def gql_description(self, ctx: Context, **_: Any) -> str:
        return self.description_html.replace("<p>", "").replace("</p>", "")

    def gql_total_inventory(self, ctx: Context, **_: Any) -> int:
        return sum(variant.inventory_item.available() for variant in self.variants)

    def gql_tracks_inventory(self, ctx: Context, **_: Any) -> bool:
        return any(variant.inventory_item.tracked for variant in self.variants)

    def gql_has_only_default_variant(self, ctx: Context, **_: Any) -> bool:
        return len(self.variants) == 1 and self.variants[0].title == "Default Title"

    def gql_options(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        names: dict[str, list[str]] = {}
        for variant in self.variants:
            for name, value in variant.options:
                values = names.setdefault(name, [])
                if value not in values:
                    values.append(value)
        return [
            {
                "id": gid("ProductOption", self.legacy_resource_id * 10 + position),
                "name": name,
                "position": position,
                "values": values,
                "optionValues": [
                    {
                        "id": gid("ProductOptionValue", self.legacy_resource_id * 100 + i),
                        "name": value,
                        "hasVariants": True,
                    }
                    for i, value in enumerate(values)
                ],
            }
            for position, (name, values) in enumerate(names.items(), start=1)
        ]

    def gql_price_range_v2(self, ctx: Context, **_: Any) -> dict[str, Any]:
        prices = [variant.price for variant in self.variants] or [Decimal(0)]
        currency = ctx.store.shop.currency_code
        return {
            "minVariantPrice": money(min(prices), currency),
            "maxVariantPrice": money(max(prices), currency),
        }

    def gql_online_store_url(self, ctx: Context, **_: Any) -> str | None:
        if self.status != "ACTIVE":
            return None
        return f"https://{ctx.store.shop.myshopify_domain}/products/{self.handle}"

    def gql_featured_media(self, ctx: Context, **_: Any) -> None:
        return None

    def gql_media(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate([], ctx, **_page(args))

    def gql_seo(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"title": None, "description": None}


@dataclass(eq=False)
class LineItem(Record):
    typename: ClassVar[str] = "LineItem"
    legacy_resource_id: int
    title: str
    variant_title: str | None
    sku: str | None
    vendor: str | None
    quantity: int
    price: Decimal
    variant: ProductVariant | None
    tax_lines: list[dict[str, Any]]
    requires_shipping: bool = True
    taxable: bool = True
    fulfilled_quantity: int = 0
    refunded_quantity: int = 0
    committed: int = 0  # claimed from stock and not shipped yet
    consumed: int = 0  # shipped from claimed stock

    @property
    def product(self) -> Product | None:
        return self.variant.product if self.variant else None

    @property
    def name(self) -> str:
        return f"{self.title} - {self.variant_title}" if self.variant_title else self.title

    def gql_current_quantity(self, ctx: Context, **_: Any) -> int:
        return self.quantity - self.refunded_quantity

    def gql_unfulfilled_quantity(self, ctx: Context, **_: Any) -> int:
        return max(0, self.quantity - self.refunded_quantity - self.fulfilled_quantity)

    def gql_original_total_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.price * self.quantity, ctx.store.shop.currency_code)

    def gql_original_unit_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.price, ctx.store.shop.currency_code)

    def gql_tax_lines(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [_tax_line(line, ctx.store.shop.currency_code) for line in self.tax_lines]


def _tax_line(line: dict[str, Any], currency: str) -> dict[str, Any]:
    rate = float(line["rate"])
    return {
        "title": line["title"],
        "rate": rate,
        "ratePercentage": round(rate * 100, 4),
        "priceSet": money_bag(line["price"], currency),
        "source": None,
        "channelLiable": bool(line.get("channel_liable")),
    }


@dataclass(eq=False)
class Transaction(Record):
    typename: ClassVar[str] = "OrderTransaction"
    legacy_resource_id: int
    kind: str
    status: str
    gateway: str
    amount: Decimal
    created_at: datetime
    processed_at: datetime
    test: bool = False

    def gql_amount_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.amount, ctx.store.shop.currency_code)


@dataclass(eq=False)
class Order(Record):
    typename: ClassVar[str] = "Order"
    legacy_resource_id: int
    number: int
    email: str | None
    currency_code: str
    line_items: list[LineItem]
    tax_lines: list[dict[str, Any]]
    shipping_lines: list[dict[str, Any]]
    transactions: list[Transaction]
    shipping_address: dict[str, Any] | None
    billing_address: dict[str, Any] | None
    tags: list[str]
    source_identifier: str | None
    source_name: str | None
    note: str | None
    taxes_included: bool
    test: bool
    created_at: datetime
    updated_at: datetime
    processed_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    closed_at: datetime | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)
    fulfillments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"#{self.number}"

    @property
    def subtotal(self) -> Decimal:
        return sum((line.price * line.quantity for line in self.line_items), Decimal(0))

    @property
    def total_tax(self) -> Decimal:
        own = sum((Decimal(str(line["price"])) for line in self.tax_lines), Decimal(0))
        items = sum(
            (Decimal(str(tax["price"])) for line in self.line_items for tax in line.tax_lines), Decimal(0)
        )
        return own + items

    @property
    def total_shipping(self) -> Decimal:
        return sum((Decimal(str(line["price"])) for line in self.shipping_lines), Decimal(0))

    @property
    def total_price(self) -> Decimal:
        tax = Decimal(0) if self.taxes_included else self.total_tax
        return self.subtotal + tax + self.total_shipping

    @property
    def received(self) -> Decimal:
        paid = sum(
            (t.amount for t in self.transactions if t.kind in ("SALE", "CAPTURE") and t.status == "SUCCESS"),
            Decimal(0),
        )
        refunded = sum(
            (t.amount for t in self.transactions if t.kind == "REFUND" and t.status == "SUCCESS"), Decimal(0)
        )
        return paid - refunded

    @property
    def refunded(self) -> Decimal:
        return sum(
            (t.amount for t in self.transactions if t.kind == "REFUND" and t.status == "SUCCESS"), Decimal(0)
        )

    @property
    def financial_status(self) -> str:
        refunded = self.refunded
        if refunded > 0:
            return "REFUNDED" if refunded >= self.total_price else "PARTIALLY_REFUNDED"
        paid = self.received
        if (
            paid >= self.total_price
            and self.total_price >= 0
            and any(t.kind in ("SALE", "CAPTURE") for t in self.transactions)
        ):
            return "PAID"
        if any(t.kind == "AUTHORIZATION" and t.status == "SUCCESS" for t in self.transactions):
            return "AUTHORIZED"
        if paid > 0:
            return "PARTIALLY_PAID"
        return "PENDING"

    @property
    def fulfillment_status(self) -> str:
        done = sum(line.fulfilled_quantity for line in self.line_items)
        if done > 0 and all(
            line.fulfilled_quantity + line.refunded_quantity >= line.quantity for line in self.line_items
        ):
            return "FULFILLED"
        if done > 0:
            return "PARTIALLY_FULFILLED"
        return "UNFULFILLED"

    def gql_line_items(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate(self.line_items, ctx, **_page(args))

    def gql_transactions(self, ctx: Context, first: int | None = None, **_: Any) -> list[Transaction]:
        return self.transactions[:first] if first is not None else list(self.transactions)

    def gql_tax_lines(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [_tax_line(line, self.currency_code) for line in self.tax_lines]

    def gql_display_financial_status(self, ctx: Context, **_: Any) -> str:
        return self.financial_status

    def gql_display_fulfillment_status(self, ctx: Context, **_: Any) -> str:
        return self.fulfillment_status

    def gql_closed(self, ctx: Context, **_: Any) -> bool:
        return self.closed_at is not None

    def gql_fully_paid(self, ctx: Context, **_: Any) -> bool:
        return self.received >= self.total_price

    def gql_unpaid(self, ctx: Context, **_: Any) -> bool:
        return self.received <= 0

    def gql_confirmed(self, ctx: Context, **_: Any) -> bool:
        return True

    def gql_subtotal_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.subtotal, self.currency_code)

    def gql_total_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_price, self.currency_code)

    def gql_current_total_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_price - self.refunded, self.currency_code)

    def gql_total_tax_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_tax, self.currency_code)

    def gql_total_shipping_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_shipping, self.currency_code)

    def gql_total_received_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.received, self.currency_code)

    def gql_total_refunded_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.refunded, self.currency_code)

    def gql_total_outstanding_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(max(Decimal(0), self.total_price - self.received), self.currency_code)

    def gql_shipping_address(self, ctx: Context, **_: Any) -> dict[str, Any] | None:
        return _address(self.shipping_address, self.legacy_resource_id)

    def gql_billing_address(self, ctx: Context, **_: Any) -> dict[str, Any] | None:
        return _address(self.billing_address, self.legacy_resource_id + 1)

    def gql_cancelled_at(self, ctx: Context, **_: Any) -> datetime | None:
        return self.cancelled_at

    def gql_refunds(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": gid("Refund", refund["id"]),
                "createdAt": refund["created_at"],
                "note": refund.get("note"),
                "totalRefundedSet": money_bag(refund["amount"], self.currency_code),
                "legacyResourceId": str(refund["id"]),
            }
            for refund in self.refunds
        ]

    def gql_fulfillments(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": gid("Fulfillment", f["id"]),
                "status": "SUCCESS",
                "createdAt": f["created_at"],
                "updatedAt": f["created_at"],
                "name": f"{self.name}-F{i}",
                "legacyResourceId": str(f["id"]),
                "trackingInfo": [
                    {"company": f.get("tracking_company"), "number": f.get("tracking_number"), "url": None}
                ],
            }
            for i, f in enumerate(self.fulfillments, start=1)
        ]

    def gql_subtotal_line_items_quantity(self, ctx: Context, **_: Any) -> int:
        return sum(line.quantity for line in self.line_items)

    def gql_payment_gateway_names(self, ctx: Context, **_: Any) -> list[str]:
        return sorted({t.gateway for t in self.transactions})


def _address(address: dict[str, Any] | None, number: int) -> dict[str, Any] | None:
    if address is None:
        return None
    shown = dict(address)
    shown.setdefault("id", gid("MailingAddress", f"{number}?model_name=Address"))
    shown.setdefault("name", " ".join(filter(None, (address.get("firstName"), address.get("lastName")))))
    shown.setdefault("coordinatesValidated", False)
    shown.setdefault("formattedArea", None)
    return shown


@dataclass(eq=False)
class WebhookSubscription(Record):
    typename: ClassVar[str] = "WebhookSubscription"
    legacy_resource_id: int
    topic: str
    uri: str
    created_at: datetime
    updated_at: datetime
    filter: str | None = None
    format: str = "JSON"
    include_fields: list[str] = field(default_factory=list)
    metafield_namespaces: list[str] = field(default_factory=list)
    name: str | None = None

    def gql_callback_url(self, ctx: Context, **_: Any) -> str:
        return self.uri

    def gql_endpoint(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"__typename": "WebhookHttpEndpoint", "callbackUrl": self.uri}

    def gql_api_version(self, ctx: Context, **_: Any) -> dict[str, Any]:
        from connector.sandbox.shopify.schema import API_VERSION

        return {"handle": API_VERSION, "displayName": API_VERSION, "supported": True}

    def gql_metafields(self, ctx: Context, **_: Any) -> list[Any]:
        return []


@dataclass(eq=False)
class BulkOperation(Record):
    typename: ClassVar[str] = "BulkOperation"
    legacy_resource_id: int
    query: str
    created_at: datetime
    group_objects: bool = False
    type: str = "QUERY"
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = None
    partial_data_url: str | None = None
    body: bytes | None = None

    def gql_object_count(self, ctx: Context, **_: Any) -> str:
        return str(self.object_count)

    def gql_root_object_count(self, ctx: Context, **_: Any) -> str:
        return str(self.root_object_count)

    def gql_file_size(self, ctx: Context, **_: Any) -> str | None:
        return None if self.file_size is None else str(self.file_size)


@dataclass(eq=False)
class Job:
    typename: ClassVar[str] = "Job"
    id: str
    done: bool = False
    status: str = "STARTED"
    order: Order | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    run_at: float = 0.0

    def gql_query(self, ctx: Context, **_: Any) -> object | None:
        return ctx if self.done else None


def _page(args: dict[str, Any]) -> dict[str, Any]:
    """The pagination arguments of a connection field (the others are ignored)."""
    return {name: args[name] for name in ("first", "after", "last", "before", "reverse") if name in args}
