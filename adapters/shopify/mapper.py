"""Pure functions between Shopify Admin GraphQL JSON and domain types; nothing here does I/O.

Catalog: product nodes (paged reads) and bulk-operation JSONL records (`BulkAssembler`) become `Product`s;
prices are read as `Decimal` text into `Money` (never a float); stock below zero (oversold) reads as 0 and
untracked stock as None. Orders: a domain `Order` becomes `orderCreate` variables. Ids stay Shopify GIDs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from adapters.shopify import const
from connector.domain.catalog import InventoryLevel, Product, ProductStatus, Variant
from connector.domain.money import Money
from connector.domain.orders import Address, ExternalOrderRef, Order

GID_PREFIX: Final = "gid://shopify/"
DEFAULT_OPTION: Final = ("Title", "Default Title")
AVAILABLE: Final = "available"

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
    """A Shopify Money/Decimal value ("12.99") in `currency`; ValueError when it is not a non-negative amount."""
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
    options = tuple(
        (_text(option.get("name")), _text(option.get("value")))
        for option in selected
        if isinstance(option, dict)
    )
    return () if options == (DEFAULT_OPTION,) else options


def variant(
    node: Mapping[str, Any], currency: str, product_status: ProductStatus, product_title: str
) -> Variant:
    """One ProductVariant node; ValueError naming the field when it is unusable."""
    variant_id = node.get("id")
    if not isinstance(variant_id, str) or gid_type(variant_id) != "ProductVariant":
        raise ValueError(f"variant id {variant_id!r} is not a ProductVariant GID")
    price = money(node.get("price"), currency)
    compare = node.get("compareAtPrice")
    compare_at = money(compare, currency) if compare not in (None, "") else None
    if compare_at is not None and compare_at.minor <= price.minor:
        compare_at = None
    item = node.get("inventoryItem")
    item = item if isinstance(item, dict) else {}
    title = _text(node.get("title"))
    if not title or title == DEFAULT_OPTION[1]:
        title = product_title
    sku = node.get("sku")
    return Variant(
        external_id=variant_id,
        title=title,
        price=price,
        sku=_text(sku) if isinstance(sku, str) else None,  # an empty SKU stays "", a missing one None
        barcode=_text(node.get("barcode")) or None,
        compare_at_price=compare_at,
        status=product_status,
        inventory_item_ref=item.get("id") if isinstance(item.get("id"), str) else None,
        quantity=quantity(node.get("inventoryQuantity"), item.get("tracked", True)),
        options=_options(node),
    )


def media_url(node: object) -> str | None:
    """The image URL of a media node (MediaImage); None for videos and 3D models."""
    if not isinstance(node, dict):
        return None
    image = node.get("image")
    url = image.get("url") if isinstance(image, dict) else None
    return url if isinstance(url, str) and url else None


def product_header(node: Mapping[str, Any], media: Iterable[str] = ()) -> Product:
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
    header = product_header(node, media)
    connection = node.get("variants")
    found, errors = variants_of(header, connection, currency)
    return PageProduct(replace(header, variants=tuple(found)), next_cursor(connection), tuple(errors))


@dataclass(slots=True)
class _Pending:
    variants: list[Variant] = field(default_factory=list)


class BulkAssembler:
    """Rebuilds products from the JSONL of a bulk `BULK_CATALOG` export, line by line.

    The format, as Shopify documents it: one JSON object per line; an object of a nested connection is a
    line of its own naming its parent's id in `__parentId`; a line's type is its `__typename` when the query
    asks for it, else the type in its GID (`gid://shopify/<Type>/<id>`, sometimes with a query string). Since
    API 2026-01 children are not grouped under their parent: a variant (or media) line may come before its
    product or after lines of other products. Product and ProductVariant lines are read; a MediaImage (any
    media line with an image URL) under a product gives an image; lines of any other type (metafields,
    videos, whatever a later query adds) are counted in `ignored` by type, never errors. Every product a line
    refers to is accounted for: read whole, yielded without variants when none of its variant lines could be
    used, or, when its own line is missing or unusable, named in `skipped_refs` (with the variant lines that
    came for it) so a full sync keeps it as it is.

    The assembler keeps, for every product seen, its header (the product without variants: a few short
    strings), and buffers variants by product id. A product is yielded when the file ends, so it comes
    whole; but when more than `max_buffered` variants are waiting, the products waiting longest are yielded
    at once with the variants read so far, and a variant of theirs that comes later is yielded at the end as
    another part of the same product (the catalog sync merges parts). Memory is therefore bounded by
    `max_buffered` variants plus one header per product, whatever the catalog size. Images that come after
    their product was yielded are dropped, so under that pressure a product may be seen with fewer images
    than it has.
    """

    def __init__(self, currency: str, max_buffered: int = const.MAX_BUFFERED_VARIANTS) -> None:
        self.currency = currency
        self.max_buffered = max(1, max_buffered)
        self.errors: list[tuple[int, str]] = []
        self.skipped = 0
        """Lines refused, including those beyond the recorded `errors`."""
        self.skipped_refs: set[str] = set()
        self.ignored: dict[str, int] = {}
        """Lines of types not modelled here, by type."""
        self._headers: dict[str, Product] = {}
        self._media: dict[str, list[str]] = {}
        self._pending: dict[str, list[tuple[int, dict[str, Any]]] | _Pending] = {}
        self._buffered = 0
        self._emitted: set[str] = set()
        self._bad_products: set[str] = set()
        self._referred: set[str] = set()
        """Products named by a line other than their own (those still without a header at the end are
        reported in `skipped_refs`)."""
        self.products = 0

    def _skip(self, position: int, reason: str, *refs: str | None) -> None:
        self.skipped += 1
        self.skipped_refs.update(ref for ref in refs if ref)
        if len(self.errors) < 1000:
            self.errors.append((position, reason))

    def add_line(self, position: int, line: bytes | str) -> Iterator[Product]:
        """Read one JSONL line (position = line number); yields products when the buffer must be relieved."""
        try:
            record = orjson.loads(line)  # money comes as Decimal text ("12.99"), never as a JSON number
        except ValueError as exc:
            self._skip(position, f"line {position} is not JSON: {exc}")
            return iter(())
        if not isinstance(record, dict):
            self._skip(position, f"line {position} is not a JSON object")
            return iter(())
        return self.add(position, record)

    def add(self, position: int, record: dict[str, Any]) -> Iterator[Product]:
        record_id = record.get("id")
        record_id = record_id if isinstance(record_id, str) and record_id else None
        typename = record.get("__typename")
        kind = typename if isinstance(typename, str) and typename else None
        kind = kind or (gid_type(record_id) if record_id else None)
        parent = record.get("__parentId")
        if parent is not None and not isinstance(parent, str):
            self._skip(position, f"line {position}: __parentId is not a GID")
            return iter(())
        if kind is None:
            if parent is None:
                self._skip(position, f"line {position} has neither an id nor a __typename")
                return iter(())
            kind = "unknown"
        if kind == "Product" and parent is None:
            return self._add_product(position, record_id, record)
        if kind == "ProductVariant" and parent is not None and gid_type(parent) == "Product":
            if record_id is None:
                self._skip(position, f"line {position}: a variant without an id", parent)
                return iter(())
            self._add_variant(position, parent, record)
            return self._relieve()
        if parent is not None and gid_type(parent) == "Product":
            self._referred.add(parent)
            url = media_url(record)
            if url:  # an image of the product (dropped when the product was already yielded)
                if parent not in self._emitted:
                    media = self._media.setdefault(parent, [])
                    if len(media) < const.MAX_MEDIA:
                        media.append(url)
                return iter(())
        self.ignored[kind] = self.ignored.get(kind, 0) + 1
        return iter(())

    def _add_product(self, position: int, record_id: str | None, record: dict[str, Any]) -> Iterator[Product]:
        if record_id is None:
            self._skip(position, f"line {position}: a product without an id")
            return iter(())
        try:
            self._headers[record_id] = product_header(record)
        except ValueError as exc:
            self._skip(position, str(exc), record_id)
            self._bad_products.add(record_id)
            self._headers.pop(record_id, None)
            waiting = self._pending.pop(record_id, None)
            for early_position, early in waiting if isinstance(waiting, list) else []:
                self._buffered -= 1
                self._skip(
                    early_position,
                    f"variant {early.get('id')}: its product is unusable",
                    str(early.get("id")),
                )
            return iter(())
        waiting = self._pending.get(record_id)
        if isinstance(waiting, list):  # variants that came before their product
            self._pending[record_id] = _Pending()
            for early_position, early in waiting:
                self._buffered -= 1
                self._add_variant(early_position, record_id, early)
        return self._relieve()

    def _add_variant(self, position: int, parent: str, record: dict[str, Any]) -> None:
        header = self._headers.get(parent)
        pending = self._pending.get(parent)
        if header is None:
            if parent in self._bad_products:
                self._skip(
                    position,
                    f"variant {record.get('id')}: its product is unusable",
                    str(record["id"]),
                    parent,
                )
                return
            orphans = pending if isinstance(pending, list) else []
            orphans.append((position, record))
            self._pending[parent] = orphans
            self._buffered += 1
            return
        try:
            found = variant(record, self.currency, header.status, header.title)
        except (ValueError, ArithmeticError) as exc:
            self._skip(position, f"variant {record.get('id')}: {exc}", str(record.get("id")), parent)
            return
        if not isinstance(pending, _Pending):
            pending = self._pending[parent] = _Pending()
        pending.variants.append(found)
        self._buffered += 1

    def _part(self, product_id: str, pending: _Pending) -> Product:
        header = self._headers[product_id]
        if product_id not in self._emitted:
            header = self._headers[product_id] = replace(header, media=tuple(self._media.pop(product_id, ())))
        self._emitted.add(product_id)
        self.products += 1
        return replace(header, variants=tuple(pending.variants))

    def _relieve(self) -> Iterator[Product]:
        if self._buffered <= self.max_buffered:
            return iter(())
        parts: list[Product] = []
        for product_id in list(self._pending):
            if self._buffered <= self.max_buffered // 2:
                break
            pending = self._pending[product_id]
            if isinstance(pending, _Pending) and pending.variants:
                del self._pending[product_id]
                self._buffered -= len(pending.variants)
                parts.append(self._part(product_id, pending))
        return iter(parts)

    def finish(self) -> Iterator[Product]:
        """The products still waiting, in the order they were first seen, then those no usable variant line
        came for (yielded without variants); orphan variants are reported with their product."""
        for product_id, pending in list(self._pending.items()):
            del self._pending[product_id]
            if isinstance(pending, _Pending):
                self._buffered -= len(pending.variants)
                if pending.variants:
                    yield self._part(product_id, pending)
                continue
            for position, record in pending:
                self._buffered -= 1
                self._skip(
                    position,
                    f"variant {record.get('id')}: product {product_id} is not in the export",
                    str(record.get("id")),
                    product_id,
                )
        for product_id in list(self._headers):
            if product_id not in self._emitted:
                yield self._part(product_id, _Pending())
        self.skipped_refs.update(self._referred - self._headers.keys())
        self._media.clear()


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


# -- orders ---------------------------------------------------------------------------------------------


def key_tag(idempotency_key_value: str) -> str:
    """The order tag that names one idempotency key (tags are at most 40 characters)."""
    return const.ORDER_KEY_TAG_PREFIX + hashlib.sha256(idempotency_key_value.encode()).hexdigest()[:24]


def search_literal(value: str) -> str:
    """`value` quoted for Shopify search syntax (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _money_bag(value: Money) -> dict[str, Any]:
    return {"shopMoney": {"amount": decimal_text(value), "currencyCode": value.currency}}


def _address(address: Address) -> dict[str, Any]:
    first, _, last = address.name.strip().rpartition(" ")
    data: dict[str, Any] = {
        "firstName": first or None,
        "lastName": last or address.name.strip(),
        "address1": address.line1,
        "address2": address.line2 or None,
        "city": address.city,
        "zip": address.postal_code or None,
        "countryCode": address.country_code.upper(),
        "provinceCode": address.province_code or None,
        "phone": address.phone or None,
    }
    return {key: value for key, value in data.items() if value is not None}


def order_variables(
    order: Order,
    key: str,
    *,
    inventory_behaviour: str = const.DEFAULT_INVENTORY_BEHAVIOUR,
    extra_tags: Sequence[str] = (),
    source_name: str | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """`orderCreate` variables for a platform order: lines at their prices with taxes, a line discount total
    as one fixed discount, and one successful SALE transaction for the amount the buyer paid."""
    if not order.lines:
        raise ValueError("order has no lines")
    currency = order.currency
    total = 0
    discount_total = 0
    lines: list[dict[str, Any]] = []
    for number, line in enumerate(order.lines, start=1):
        if line.quantity <= 0:
            raise ValueError(f"line {number}: quantity must be positive")
        if gid_type(line.variant_external_id) != "ProductVariant":
            raise ValueError(f"line {number}: {line.variant_external_id!r} is not a ProductVariant GID")
        for part in (line.unit_price, line.discount, line.tax):
            if part is not None and part.currency != currency:
                raise ValueError(f"line {number}: {part.currency} amount in a {currency} order")
        gross = line.unit_price.minor * line.quantity
        discount = line.discount.minor if line.discount else 0
        tax = line.tax.minor if line.tax else 0
        item: dict[str, Any] = {
            "variantId": line.variant_external_id,
            "quantity": line.quantity,
            "priceSet": _money_bag(line.unit_price),
        }
        if tax:
            net = gross - discount
            rate = (Decimal(tax) / Decimal(net)).quantize(Decimal("0.0001")) if net > 0 else Decimal(0)
            item["taxLines"] = [
                {"title": "Tax", "rate": str(rate), "priceSet": _money_bag(Money(tax, currency))}
            ]
        lines.append(item)
        total += gross - discount + tax
        discount_total += discount
    tags = [const.ORDER_TAG, key_tag(key), *(t for t in extra_tags if t)]
    data: dict[str, Any] = {
        "currency": currency,
        "lineItems": lines,
        "sourceIdentifier": key,
        "tags": list(dict.fromkeys(tags)),
        "note": f"Storelink order {order.id}",
        "transactions": [
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": const.TRANSACTION_GATEWAY,
                "amountSet": _money_bag(Money(total, currency)),
                "test": test,
            }
        ],
        "test": test,
    }
    if discount_total:
        data["discountCode"] = {
            "itemFixedDiscountCode": {
                "code": "STORELINK",
                "amountSet": _money_bag(Money(discount_total, currency)),
            }
        }
    if order.buyer_email:
        data["email"] = order.buyer_email
    if order.shipping_address is not None:
        data["shippingAddress"] = _address(order.shipping_address)
    if source_name:
        data["sourceName"] = source_name
    options = {
        "inventoryBehaviour": inventory_behaviour,
        "sendReceipt": False,
        "sendFulfillmentReceipt": False,
    }
    return {"order": data, "options": options}


def order_ref(node: object) -> ExternalOrderRef:
    """The store reference of an Order node (its GID as text, and its name such as "#1001")."""
    if not isinstance(node, dict) or not isinstance(node.get("id"), str):
        raise ValueError("order node has no id")
    name = node.get("name")
    return ExternalOrderRef(external_id=str(node["id"]), name=name if isinstance(name, str) else None)
