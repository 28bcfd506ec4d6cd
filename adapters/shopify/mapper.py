"""Pure functions between Shopify Admin GraphQL JSON and domain types; nothing here does I/O.

Catalog: product nodes (paged reads; bulk-operation records in `bulk_mapper`) become `Product`s with their
`tags` (a list of strings in GraphQL) and `collections` (`Collection { id handle title }` nodes, the first
`MAX_COLLECTIONS`); prices are read as `Decimal` text into `Money` (never a float); stock below zero
(oversold) reads as 0 and untracked stock as None. Inventory levels are read and `inventorySetQuantities` input written. Orders are
mapped in `order_mapper`. Ids stay Shopify GIDs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from adapters.shopify import const
from connector.domain.catalog import (
    CollectionRef,
    InventoryLevel,
    Product,
    ProductStatus,
    Variant,
    clean_collections,
    clean_tags,
)
from connector.domain.money import Money, exponent

GID_PREFIX: Final = "gid://shopify/"
DEFAULT_OPTION: Final = ("Title", "Default Title")
AVAILABLE: Final = "available"

_MAX_PLAIN_AMOUNT: Final = 20
"""Longest amount text read without a `Decimal` (well within the 28 digits `Decimal` keeps)."""

_STATUSES: Final = {
    "ACTIVE": ProductStatus.ACTIVE,
    "DRAFT": ProductStatus.DRAFT,
    "ARCHIVED": ProductStatus.ARCHIVED,
    "UNLISTED": ProductStatus.ACTIVE,
}


# -- ids, times, money ----------------------------------------------------------------------------------


def gid(resource: str, numeric: object) -> str:
    """`gid://shopify/<resource>/<id>` from a numeric id (int or digits); ValueError otherwise."""
    if isinstance(numeric, bool) or not isinstance(numeric, int | str):
        raise ValueError(f"{resource} id must be a number, got {type(numeric).__name__}")
    text = str(numeric).strip()
    if not text.isdigit() or not text.isascii() or len(text) > 20:
        raise ValueError(f"{resource} id {text[:30]!r} is not a number")
    return f"{GID_PREFIX}{resource}/{text}"


_VARIANT_GID: Final = f"{GID_PREFIX}ProductVariant/"
_PRODUCT_GID: Final = f"{GID_PREFIX}Product/"


def _is_gid_of(value: str, prefix: str) -> bool:
    """`gid_type(value)` is the type `prefix` (`gid://shopify/<Type>/`) names, without splitting `value`."""
    return value.startswith(prefix) and len(value) > len(prefix)


def is_variant_gid(value: str) -> bool:
    """`gid_type(value) == "ProductVariant"`, in one string comparison."""
    return value.startswith(_VARIANT_GID) and len(value) > len(_VARIANT_GID)


def is_product_gid(value: str) -> bool:
    """`gid_type(value) == "Product"`, in one string comparison."""
    return value.startswith(_PRODUCT_GID) and len(value) > len(_PRODUCT_GID)


def gid_type(value: str) -> str | None:
    """The resource type of a GID ("ProductVariant"), None when `value` is not one."""
    if not value.startswith(GID_PREFIX):
        return None
    resource, _, rest = value[len(GID_PREFIX) :].partition("/")
    return resource if rest else None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time in UTC; None when absent. ValueError for anything else."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"time must be text, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def money(amount: object, currency: str) -> Money:
    """A Shopify Money/Decimal value ("12.99") in `currency`; ValueError when it is not a non-negative amount.

    The usual text, ASCII digits with no more decimals than the currency has, is read without a `Decimal`:
    to the same amount `Decimal` quantizing reads it as."""
    if type(amount) is str and len(amount) <= _MAX_PLAIN_AMOUNT and amount.isascii():
        whole, dot, fraction = amount.strip().partition(".")
        places = exponent(currency)
        if whole.isdigit() and (fraction.isdigit() or not dot) and len(fraction) <= places:
            return Money(int(whole + fraction.ljust(places, "0")), currency)
    return _money(amount, currency)


def _money(amount: object, currency: str) -> Money:
    """`money` in full: any text `Decimal` reads, ints and Decimals, rounded half-even to the currency."""
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise ValueError(f"amount {amount!r} is not a decimal")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"amount {amount!r} is not a decimal") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"amount {amount!r} is negative or not finite")
    return Money.from_decimal(value, currency)


def decimal_text(value: Money) -> str:
    """The amount as the decimal text Shopify's `Decimal` scalar takes ("12.99", "1500")."""
    return str(value.to_decimal())


def quantity(value: object, tracked: object = True) -> int | None:
    """Store stock as the domain reads it: None when untracked, 0 for oversold (negative) stock."""
    if tracked is False or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"quantity {value!r} is not a whole number")
    return max(0, value)


# -- catalog --------------------------------------------------------------------------------------------


def status(value: object) -> ProductStatus:
    found = _STATUSES.get(str(value).upper()) if value is not None else None
    if found is None:
        raise ValueError(f"product status {value!r} is unknown")
    return found


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _options(node: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    selected = node.get("selectedOptions") or []
    options = []
    for option in selected:
        if isinstance(option, dict):
            name, value = option.get("name"), option.get("value")
            options.append(
                (
                    name.strip() if isinstance(name, str) else "",
                    value.strip() if isinstance(value, str) else "",
                )
            )
    found = tuple(options)
    return () if found == (DEFAULT_OPTION,) else found


def variant(
    node: Mapping[str, Any], currency: str, product_status: ProductStatus, product_title: str
) -> Variant:
    """One ProductVariant node; ValueError naming the field when it is unusable."""
    get = node.get
    variant_id = get("id")
    if not isinstance(variant_id, str) or not _is_gid_of(variant_id, _VARIANT_GID):
        raise ValueError(f"variant id {variant_id!r} is not a ProductVariant GID")
    price = money(get("price"), currency)
    compare = get("compareAtPrice")
    compare_at = money(compare, currency) if compare is not None and compare != "" else None
    if compare_at is not None and compare_at.minor <= price.minor:
        compare_at = None
    item = get("inventoryItem")
    item = item if isinstance(item, dict) else {}
    item_ref = item.get("id")
    title = get("title")
    title = title.strip() if isinstance(title, str) else ""
    if not title or title == DEFAULT_OPTION[1]:
        title = product_title
    sku = get("sku")
    barcode = get("barcode")
    return Variant(
        variant_id,
        title,
        price,
        sku.strip() if isinstance(sku, str) else None,  # an empty SKU stays "", a missing one None
        (barcode.strip() if isinstance(barcode, str) else "") or None,
        compare_at,
        product_status,
        item_ref if isinstance(item_ref, str) else None,
        quantity(get("inventoryQuantity"), item.get("tracked", True)),
        _options(node),
    )


def media_url(node: object) -> str | None:
    """The image URL of a media node (MediaImage); None for videos and 3D models."""
    if not isinstance(node, dict):
        return None
    image = node.get("image")
    url = image.get("url") if isinstance(image, dict) else None
    return url if isinstance(url, str) and url else None


def tags(value: object) -> tuple[str, ...]:
    """`Product.tags`: a list of strings in GraphQL (webhook bodies spell them as one comma-separated
    string, which is read too)."""
    if isinstance(value, str):
        return clean_tags(value.split(","))
    return clean_tags(value) if isinstance(value, list) else ()


def collection(node: object) -> CollectionRef | None:
    """A `Collection { id handle title }` node; None when it is not one."""
    if not isinstance(node, dict):
        return None
    ref, handle, title = node.get("id"), node.get("handle"), node.get("title")
    if not isinstance(ref, str) or gid_type(ref) != "Collection":
        return None
    return CollectionRef(
        ref, handle if isinstance(handle, str) else "", title if isinstance(title, str) else ""
    )


def collections_of(found: Iterable[object]) -> tuple[CollectionRef, ...]:
    """The product's collections among `found` nodes, the first `MAX_COLLECTIONS` of them."""
    refs = [ref for ref in (collection(node) for node in found) if ref is not None]
    return clean_collections(refs[: const.MAX_COLLECTIONS])


def product_header(
    node: Mapping[str, Any], media: Iterable[str] = (), in_collections: Iterable[CollectionRef] = ()
) -> Product:
    """A Product node without its variants; ValueError naming the field when it is unusable."""
    product_id = node.get("id")
    if not isinstance(product_id, str) or gid_type(product_id) != "Product":
        raise ValueError(f"product id {product_id!r} is not a Product GID")
    title = _text(node.get("title"))
    if not title:
        raise ValueError(f"product {product_id} has no title")
    vendor = _text(node.get("vendor"))
    url = node.get("onlineStoreUrl")
    return Product(
        external_id=product_id,
        title=title,
        variants=(),
        description=_text(node.get("description")),
        vendor=vendor or None,
        url=url if isinstance(url, str) and url else None,
        media=tuple(dict.fromkeys(media))[: const.MAX_MEDIA],
        status=status(node.get("status")),
        source_updated_at=parse_time(node.get("updatedAt")),
        extra=(("handle", _text(node.get("handle"))),),
        tags=tags(node.get("tags")),
        collections=tuple(in_collections),
    )


@dataclass(frozen=True, slots=True)
class PageProduct:
    """A product read from a catalog page, with the cursor of its remaining variants when there are more."""

    product: Product
    more_variants_after: str | None
    errors: tuple[tuple[str, str], ...] = ()
    """(variant id, reason) of variants that could not be read."""


def nodes(connection: object) -> list[Any]:
    if not isinstance(connection, dict):
        return []
    nodes = connection.get("nodes")
    if isinstance(nodes, list):
        return nodes
    edges = connection.get("edges")
    return [edge.get("node") for edge in edges if isinstance(edge, dict)] if isinstance(edges, list) else []


def next_cursor(connection: object) -> str | None:
    """The `endCursor` when the connection has a next page."""
    if not isinstance(connection, dict):
        return None
    info = connection.get("pageInfo")
    if isinstance(info, dict) and info.get("hasNextPage") and isinstance(info.get("endCursor"), str):
        return str(info["endCursor"])
    return None


def variants_of(
    header: Product, connection: object, currency: str
) -> tuple[list[Variant], list[tuple[str, str]]]:
    """The readable variants of a `variants` connection, and (variant id, reason) for the others."""
    found: list[Variant] = []
    errors: list[tuple[str, str]] = []
    for node in nodes(connection):
        if not isinstance(node, dict):
            continue
        try:
            found.append(variant(node, currency, header.status, header.title))
        except (ValueError, ArithmeticError) as exc:
            errors.append((str(node.get("id") or ""), f"variant {node.get('id')}: {exc}"))
    return found, errors


def page_product(node: Mapping[str, Any], currency: str) -> PageProduct:
    """A product node of CATALOG_PAGE with its first variants."""
    media = [url for url in (media_url(m) for m in nodes(node.get("media"))) if url]
    header = product_header(node, media, collections_of(nodes(node.get("collections"))))
    connection = node.get("variants")
    found, errors = variants_of(header, connection, currency)
    return PageProduct(replace(header, variants=tuple(found)), next_cursor(connection), tuple(errors))


# -- inventory ------------------------------------------------------------------------------------------


def _available(level: object) -> tuple[int | None, datetime | None, str | None]:
    if not isinstance(level, dict):
        return None, None, None
    amount: int | None = None
    for entry in level.get("quantities") or []:
        if isinstance(entry, dict) and entry.get("name") == AVAILABLE:
            value = entry.get("quantity")
            if isinstance(value, bool) or not isinstance(value, int | None):
                raise ValueError(f"quantity {value!r} is not a whole number")
            amount = value  # as stored, below zero when oversold: callers clamp the figure they report
    location = level.get("location")
    location_id = location.get("id") if isinstance(location, dict) else None
    return amount, parse_time(level.get("updatedAt")), location_id if isinstance(location_id, str) else None


def level_at_location(node: Mapping[str, Any], location: str) -> InventoryLevel:
    """The `available` stock of an INVENTORY_AT_LOCATION variant node; 0 when not stocked there."""
    item = node.get("inventoryItem")
    item = item if isinstance(item, dict) else {}
    amount, updated_at, _ = _available(item.get("inventoryLevel"))
    amount = None if item.get("tracked") is False else max(0, amount or 0)
    return InventoryLevel(str(node["id"]), location, amount, updated_at)


def summed_level(node: Mapping[str, Any], location_ref: str) -> InventoryLevel:
    """The `available` stock of a variant (or inventory item) node summed over every location it has (the
    variant's `inventoryQuantity`), 0 when that is below zero."""
    item = node.get("inventoryItem") if "inventoryItem" in node else node
    item = item if isinstance(item, dict) else {}
    total: int | None = None if item.get("tracked") is False else 0
    latest: datetime | None = None
    for level in nodes(item.get("inventoryLevels")):
        amount, updated_at, _ = _available(level)
        if total is not None and amount is not None:
            total += amount
        if updated_at is not None and (latest is None or updated_at > latest):
            latest = updated_at
    # Summed as stored and clamped once, as the variant's inventoryQuantity is, so both reads agree.
    return InventoryLevel(str(node.get("id")), location_ref, None if total is None else max(0, total), latest)


def set_quantities_input(
    changes: Sequence[tuple[str, str, int, int | None]], reference: str | None = None
) -> dict[str, Any]:
    """`InventorySetQuantitiesInput` for (inventory item, location, quantity, change-from quantity) entries.

    2026-10 requires `changeFromQuantity` on every entry: the quantity read before (a compare-and-swap), or
    an explicit null to opt out.
    """
    data: dict[str, Any] = {
        "name": AVAILABLE,
        "reason": "correction",
        "quantities": [
            {
                "inventoryItemId": item,
                "locationId": location,
                "quantity": amount,
                "changeFromQuantity": before,
            }
            for item, location, amount, before in changes
        ],
    }
    if reference:
        data["referenceDocumentUri"] = reference
    return data


def idempotency_key(*parts: object) -> str:
    """A deterministic key for the same request: a retry replays it, a different request gets another."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]
