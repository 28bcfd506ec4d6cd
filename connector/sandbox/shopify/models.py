"""The emulated store's records (shop, locations, products, variants, inventory, webhook subscriptions, bulk
operations; orders are in `order_models`) and how each answers GraphQL fields: a `gql_<field>` method when the
field needs work, otherwise the snake_case attribute of the same name. Also the GIDs, times, money and cursor
pagination every record is shown with."""

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
        return paginate(levels, ctx, key=lambda level: level.item.legacy_resource_id, **page_args(args))

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
        return paginate(levels, ctx, key=lambda level: level.location.legacy_resource_id, **page_args(args))

    def gql_inventory_level(self, ctx: Context, **args: Any) -> InventoryLevel | None:
        return self.levels.get(parse_gid(args.get("locationId"), "Location") or -1)

    def gql_variants(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate([self.variant] if self.variant else [], ctx, **page_args(args))

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
    collections: list[Collection] = field(default_factory=list)
    """The collections the product is in, by id."""

    def gql_variants(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate(self.variants, ctx, **page_args(args))

    def gql_collections(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate(self.collections, ctx, **page_args(args))

    def gql_in_collection(self, ctx: Context, **args: Any) -> bool:
        return any(c.id == args.get("id") for c in self.collections)

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
        return paginate([], ctx, **page_args(args))

    def gql_seo(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"title": None, "description": None}


@dataclass(eq=False)
class Collection(Record):
    """A custom (manual) collection: the products placed in it, in the order they were added."""

    typename: ClassVar[str] = "Collection"
    legacy_resource_id: int
    title: str
    handle: str
    created_at: datetime
    updated_at: datetime
    description_html: str = ""
    sort_order: str = "MANUAL"
    products: list[Product] = field(default_factory=list)

    def gql_products(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate(self.products, ctx, **page_args(args))

    def gql_products_count(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"count": len(self.products), "precision": "EXACT"}

    def gql_description(self, ctx: Context, **_: Any) -> str:
        return self.description_html.replace("<p>", "").replace("</p>", "")

    def gql_has_product(self, ctx: Context, **args: Any) -> bool:
        return any(p.id == args.get("id") for p in self.products)

    def gql_rule_set(self, ctx: Context, **_: Any) -> None:
        return None

    def gql_seo(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return {"title": None, "description": None}


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


def page_args(args: dict[str, Any]) -> dict[str, Any]:
    """The pagination arguments of a connection field (the others are ignored)."""
    return {name: args[name] for name in ("first", "after", "last", "before", "reverse") if name in args}
