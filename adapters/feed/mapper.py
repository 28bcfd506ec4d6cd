"""Pure functions from product-feed rows (column name -> text) to domain products, variants and stock.

Every parse failure is a `ValueError` whose message says which column is wrong and why; the adapter records
it against the row and goes on. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from connector.domain.catalog import InventoryLevel, Product, ProductStatus, Variant
from connector.domain.money import Money, parse_money

MAX_ID_CHARS = 255
MAX_TEXT_CHARS = 255
MAX_BARCODE_CHARS = 64
MAX_QUANTITY = 2**31 - 1
MAX_MINOR = 2**63 - 1
_MAX_AMOUNT_CHARS = 40


class Availability(StrEnum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    PREORDER = "preorder"
    BACKORDER = "backorder"


_AVAILABILITY: dict[str, Availability] = {
    "": Availability.IN_STOCK,
    "in_stock": Availability.IN_STOCK,
    "in stock": Availability.IN_STOCK,
    "out_of_stock": Availability.OUT_OF_STOCK,
    "out of stock": Availability.OUT_OF_STOCK,
    "preorder": Availability.PREORDER,
    "pre-order": Availability.PREORDER,
    "backorder": Availability.BACKORDER,
    "back order": Availability.BACKORDER,
}


class RowParts(NamedTuple):
    """One feed row parsed: the product it belongs to (`product_id` and product fields) and its variant.

    A named tuple rather than a frozen dataclass: one is built per row, and tuples are built fastest.
    """

    product_id: str
    title: str
    description: str
    vendor: str | None
    url: str | None
    media: tuple[str, ...]
    updated_at: datetime | None
    availability: Availability
    variant: Variant


def normalize_column(name: str) -> str:
    """Column names are case-insensitive and trimmed."""
    return name.strip().lower()


def normalize_header(names: Sequence[str]) -> list[str]:
    """The normalized header of a CSV/TSV feed; raises ValueError when it repeats a column or lacks one."""
    header = [normalize_column(name) for name in names]
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise ValueError(f"feed header repeats column {name!r}")
        seen.add(name)
    return header


def missing_columns(header: Iterable[str], required: Iterable[str]) -> list[str]:
    present = set(header)
    return [name for name in required if name not in present]


def _text(value: object, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return str(value)
    if isinstance(value, list | tuple):
        return ",".join(_text(item, column) for item in value)
    raise ValueError(f"column {column!r} holds a {type(value).__name__}, expected text or a number")


def normalize_record(record: Mapping[str, object]) -> dict[str, str]:
    """A JSON feed record as a row: keys normalized, values as text (numbers as written, lists comma-joined).

    Raises ValueError for a nested object value or two keys that differ only in case or spacing.
    """
    row: dict[str, str] = {}
    for key, value in record.items():
        column = normalize_column(str(key))
        if column in row:
            raise ValueError(f"record repeats column {column!r}")
        row[column] = _text(value, column)
    return row


def parse_availability(text: str) -> Availability:
    """in_stock | out_of_stock | preorder | backorder (also "in stock", "out of stock"); empty is in stock."""
    found = _AVAILABILITY.get(text.strip().lower())
    if found is None:
        raise ValueError(
            f"availability {text.strip()!r} is not one of in_stock, out_of_stock, preorder, backorder"
        )
    return found


def parse_quantity(text: str, availability: Availability) -> int | None:
    """A non-negative whole number; when empty, 0 for out_of_stock and otherwise None (not tracked)."""
    value = text.strip()
    if not value:
        return 0 if availability is Availability.OUT_OF_STOCK else None
    negative = value.startswith("-")
    whole, dot, fraction = (value[1:] if negative else value).partition(".")
    is_whole = whole.isascii() and whole.isdigit()
    if dot:
        is_whole = is_whole and fraction.isascii() and fraction.isdigit() and not fraction.strip("0")
    if not is_whole:
        raise ValueError(f"quantity {value!r} is not a whole number")
    if negative and whole.strip("0"):
        raise ValueError(f"quantity {value!r} is negative")
    quantity = int(whole)
    if quantity > MAX_QUANTITY:
        raise ValueError(f"quantity {value!r} is too large")
    return quantity


@lru_cache(maxsize=8192)
def _money(text: str, default_currency: str | None, column: str) -> Money:
    # Feeds repeat a small set of prices: parsing each distinct text once keeps this off the profile.
    if len(text) > _MAX_AMOUNT_CHARS:
        raise ValueError(f"{column} {text[:_MAX_AMOUNT_CHARS]!r}... is too long")
    try:
        money = parse_money(text, default_currency)
    except ArithmeticError:
        raise ValueError(f"{column} {text!r} is out of range") from None
    except ValueError as exc:
        message = str(exc)
        if column != "price" and message.startswith("price"):
            message = column + message[len("price") :]
        raise ValueError(message) from None
    if money.minor > MAX_MINOR:
        raise ValueError(f"{column} {text!r} is too large")
    return money


def parse_prices(price: str, sale_price: str, default_currency: str | None) -> tuple[Money, Money | None]:
    """(selling price, compare-at price): a `sale_price` below `price` sells, and `price` becomes compare-at."""
    price = price.strip()
    if not price:
        raise ValueError("price is missing")
    regular = _money(price, default_currency, "price")
    sale_price = sale_price.strip()
    if not sale_price:
        return regular, None
    sale = _money(sale_price, default_currency, "sale_price")
    if sale.currency != regular.currency:
        raise ValueError(
            f"sale_price currency {sale.currency} differs from price currency {regular.currency}"
        )
    if sale.minor < regular.minor:
        return sale, regular
    return regular, None


def parse_updated_at(text: str) -> datetime | None:
    """ISO-8601 date or date-time; a time without offset is UTC. Returned in UTC; None when empty."""
    value = text.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"updated_at {value!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def split_links(image_link: str, additional: str = "") -> tuple[str, ...]:
    """Image links from `image_link` and the comma-separated `additional_image_link`, in order, deduplicated."""
    image_link = image_link.strip()
    if not additional.strip():
        return (image_link,) if image_link else ()
    links: dict[str, None] = {image_link: None} if image_link else {}
    for link in additional.split(","):
        link = link.strip()
        if link:
            links[link] = None
    return tuple(links)


def parse_row(row: Mapping[str, str], default_currency: str | None = None) -> RowParts:
    """Parse one row (normalized column names). Raises ValueError naming the column when the row is unusable."""
    get = row.get
    variant_id = get("id", "").strip()
    if not variant_id:
        raise ValueError("id is missing")
    if len(variant_id) > MAX_ID_CHARS:
        raise ValueError(f"id is longer than {MAX_ID_CHARS} characters")
    title = get("title", "").strip()
    if not title:
        raise ValueError("title is missing")
    product_id = get("item_group_id", "").strip() or variant_id
    if len(product_id) > MAX_ID_CHARS:
        raise ValueError(f"item_group_id is longer than {MAX_ID_CHARS} characters")
    price, compare_at = parse_prices(get("price", ""), get("sale_price", ""), default_currency)
    availability = parse_availability(get("availability", ""))
    quantity = parse_quantity(get("quantity", ""), availability)

    color = get("color", "").strip()
    size = get("size", "").strip()
    if color and size:
        options: tuple[tuple[str, str], ...] = (("Color", color), ("Size", size))
        variant_title = f"{color} / {size}"
    elif color or size:
        options = (("Color", color),) if color else (("Size", size),)
        variant_title = color or size
    else:
        options = ()
        variant_title = title
    sku = get("sku", "").strip() or get("mpn", "").strip()
    if len(sku) > MAX_TEXT_CHARS:
        raise ValueError(f"sku is longer than {MAX_TEXT_CHARS} characters")
    barcode = get("gtin", "").strip()
    if len(barcode) > MAX_BARCODE_CHARS:
        raise ValueError(f"gtin is longer than {MAX_BARCODE_CHARS} characters")
    brand = get("brand", "").strip()
    if len(brand) > MAX_TEXT_CHARS:
        raise ValueError(f"brand is longer than {MAX_TEXT_CHARS} characters")

    variant = Variant(
        external_id=variant_id,
        title=variant_title,
        price=price,
        sku=sku or None,
        barcode=barcode or None,
        compare_at_price=compare_at,
        quantity=quantity,
        options=options,
    )
    return RowParts(
        product_id=product_id,
        title=title,
        description=get("description", "").strip(),
        vendor=brand or None,
        url=get("link", "").strip() or None,
        media=split_links(get("image_link", ""), get("additional_image_link", "")),
        updated_at=parse_updated_at(get("updated_at", "")),
        availability=availability,
        variant=variant,
    )


def build_product(rows: Sequence[RowParts]) -> Product:
    """One product from consecutive rows of the same group: fields from the first row, the media of all rows,
    the latest `updated_at`, and every row's variant in order."""
    if not rows:
        raise ValueError("a product needs at least one row")
    first = rows[0]
    if len(rows) == 1:
        media = first.media
        updated_at = first.updated_at
    else:
        links: dict[str, None] = {}
        for part in rows:
            links.update(dict.fromkeys(part.media))
        media = tuple(links)
        stamps = [part.updated_at for part in rows if part.updated_at is not None]
        updated_at = max(stamps) if stamps else None
    return Product(
        external_id=first.product_id,
        title=first.title,
        variants=tuple(part.variant for part in rows),
        description=first.description,
        vendor=first.vendor,
        url=first.url,
        media=media,
        status=ProductStatus.ACTIVE,
        source_updated_at=updated_at,
    )


def parse_inventory(row: Mapping[str, str], location: str) -> InventoryLevel:
    """The stock of the row's variant at `location`: only id, availability, quantity and updated_at matter."""
    variant_id = row.get("id", "").strip()
    if not variant_id:
        raise ValueError("id is missing")
    availability = parse_availability(row.get("availability", ""))
    return InventoryLevel(
        variant_external_id=variant_id,
        location_ref=location,
        available=parse_quantity(row.get("quantity", ""), availability),
        source_updated_at=parse_updated_at(row.get("updated_at", "")),
    )
