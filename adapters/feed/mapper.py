"""Pure functions from product-feed rows (column name -> text) to domain products, variants and stock.

Every parse failure is a `ValueError` whose message says which column is wrong and why; the adapter records
it against the row and goes on. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from operator import itemgetter
from typing import Final, NamedTuple

from connector.domain.catalog import (
    CollectionRef,
    Product,
    ProductStatus,
    Variant,
    clean_collections,
    clean_tags,
    handle_of,
)
from connector.domain.money import Money, exponent, parse_money

MAX_ID_CHARS = 255
MAX_TEXT_CHARS = 255
MAX_BARCODE_CHARS = 64
MAX_QUANTITY = 2**31 - 1
MAX_MINOR = 2**63 - 1
MAX_MEMO_ENTRIES = 1 << 15
"""Entries each table of a `ParseMemo` keeps (a few megabytes at most); later values are parsed every time."""
_MAX_AMOUNT_CHARS = 40

FIELDS: Final = (
    "id",
    "item_group_id",
    "title",
    "description",
    "link",
    "image_link",
    "additional_image_link",
    "price",
    "sale_price",
    "availability",
    "quantity",
    "gtin",
    "brand",
    "sku",
    "mpn",
    "color",
    "size",
    "updated_at",
    "product_type",
    "collections",
    "custom_label_0",
    "custom_label_1",
    "custom_label_2",
    "custom_label_3",
    "custom_label_4",
    "tags",
)
"""The columns a row is read from, in the order `parse_fields` takes their values."""
PRODUCT_TYPE_PREFIX: Final = "product-type:"
"""Ids of the collections a `product_type` names, apart from those `collections` names (their handles)."""


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


Options = tuple[tuple[tuple[str, str], ...], str]
"""(variant options, variant title) of a row's color and size; the title is "" when both are empty."""
Groups = tuple[tuple[str, ...], tuple[CollectionRef, ...]]
"""(tags, collections) of a row."""
NO_GROUPS: Final[Groups] = ((), ())


class ParseMemo:
    """What one pass over a feed has already parsed, so a value repeated across rows is parsed once: prices by
    stripped text (for the pass's one default currency) and options by (color, size) as written.

    A pass keeps one and hands it to every `parse_row`/`parse_fields` call.
    """

    __slots__ = ("groups", "options", "prices")

    def __init__(self) -> None:
        self.prices: dict[str, Money] = {}
        self.options: dict[tuple[str, str], Options] = {}
        self.groups: dict[tuple[str, ...], Groups] = {}


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
    tags: tuple[str, ...] = ()
    collections: tuple[CollectionRef, ...] = ()


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


def _plain_money(text: str, default_currency: str | None, column: str) -> Money:
    """`_money` of a stripped text, with the usual shape read here without a regex or a cache.

    That shape is ASCII digits with an optional fraction no longer than the currency's minor unit, then a
    space and an upper-case ISO code ("12.99 USD", "1500 JPY"), or the amount alone with a valid default
    currency: exactly the texts `parse_money` reads as written, to the same amount. Anything else (refused
    texts included) goes through `_money`, for its checks and messages.
    """
    if len(text) <= _MAX_AMOUNT_CHARS and text.isascii():
        amount, space, currency = text.partition(" ")
        if not space:
            currency = default_currency or ""
        whole, dot, fraction = amount.partition(".")
        if (
            whole.isdigit()
            and (fraction.isdigit() or not dot)
            and len(currency) == 3
            and currency.isascii()
            and currency.isalpha()
            and currency.isupper()
        ):
            places = exponent(currency)
            if len(fraction) <= places:
                minor = int(whole + fraction.ljust(places, "0")) if places else int(whole)
                if minor <= MAX_MINOR:
                    return Money(minor, currency)
    return _money(text, default_currency, column)


def _remembered_money(text: str, default_currency: str | None, column: str, known: dict[str, Money]) -> Money:
    money = _plain_money(text, default_currency, column)
    if len(known) < MAX_MEMO_ENTRIES:
        known[text] = money
    return money


def parse_prices(
    price: str, sale_price: str, default_currency: str | None, known: dict[str, Money] | None = None
) -> tuple[Money, Money | None]:
    """(selling price, compare-at price): a `sale_price` below `price` sells, and `price` becomes compare-at.

    `known` holds prices already read for this `default_currency` (`ParseMemo.prices`), when there are any.
    """
    if known is None:
        known = {}
    price = price.strip()
    if not price:
        raise ValueError("price is missing")
    regular = known.get(price)
    if regular is None:
        regular = _remembered_money(price, default_currency, "price", known)
    sale_price = sale_price.strip()
    if not sale_price:
        return regular, None
    sale = known.get(sale_price)
    if sale is None:
        sale = _remembered_money(sale_price, default_currency, "sale_price", known)
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
    additional = additional.strip()
    if not additional:
        return (image_link,) if image_link else ()
    if "," not in additional:  # one more link, the usual case
        return (image_link, additional) if image_link and image_link != additional else (additional,)
    links: dict[str, None] = {image_link: None} if image_link else {}
    for link in additional.split(","):
        link = link.strip()
        if link:
            links[link] = None
    return tuple(links)


def parse_groups(product_type: str, collections: str, labels: Sequence[str]) -> Groups:
    """A row's tags (each custom label, and the comma-separated `tags`) and collections (the `product_type`
    path, and each comma-separated name of `collections`)."""
    *custom, listed = labels
    tags = clean_tags([*custom, *listed.split(",")])
    refs: list[CollectionRef] = []
    path = " > ".join(step.strip() for step in product_type.split(">") if step.strip())
    if path:
        refs.append(CollectionRef(PRODUCT_TYPE_PREFIX + handle_of(path), handle_of(path), path))
    for name in collections.split(","):
        name = " ".join(name.split())
        if handle_of(name):
            refs.append(CollectionRef(handle_of(name), handle_of(name), name))
    return tags, clean_collections(ref for ref in refs if ref.handle)


def _memo_groups(memo: ParseMemo, values: tuple[str, ...]) -> Groups:
    """`parse_groups` of a row's last `FIELDS` (product type, collections, labels), remembered in `memo`."""
    found = memo.groups.get(values)
    if found is None:
        found = parse_groups(values[0], values[1], values[2:])
        if len(memo.groups) < MAX_MEMO_ENTRIES:
            memo.groups[values] = found
    return found


class FieldIndex(NamedTuple):
    """Where a CSV/TSV header has each of `FIELDS`: `pick(record)` gives their values in order, as
    `parse_fields` takes them, from a record at least `width` fields long (pad a shorter one with "")."""

    pick: Callable[[Sequence[str]], tuple[str, ...]]
    width: int


def field_index(header: Sequence[str]) -> FieldIndex:
    """The `FieldIndex` of a normalized header. A column the header lacks is read just past its last field,
    where only padding is, so it reads as ""."""
    index = {name: position for position, name in enumerate(header)}
    positions = [index.get(name, len(header)) for name in FIELDS]
    return FieldIndex(itemgetter(*positions), max(positions) + 1)


def parse_row(
    row: Mapping[str, str], default_currency: str | None = None, memo: ParseMemo | None = None
) -> RowParts:
    """Parse one row (normalized column names). Raises ValueError naming the column when the row is unusable.

    `memo`, when given, is the pass's `ParseMemo` (a pass has one `default_currency`).
    """
    get = row.get
    return parse_fields([get(column, "") for column in FIELDS], default_currency, memo)


def _options(color: str, size: str) -> Options:
    color = color.strip()
    size = size.strip()
    if color and size:
        return (("Color", color), ("Size", size)), f"{color} / {size}"
    if color:
        return (("Color", color),), color
    if size:
        return (("Size", size),), size
    return (), ""


def _stock(availability_text: str, quantity_text: str) -> tuple[Availability, int | None]:
    """A row's availability and quantity. The exact spellings ("in_stock", digits only) are looked up
    directly; anything else is parsed in full."""
    availability = _AVAILABILITY.get(availability_text)
    if availability is None:
        availability = parse_availability(availability_text)
    quantity: int | None
    if quantity_text.isdigit() and quantity_text.isascii():
        quantity = int(quantity_text)
        if quantity > MAX_QUANTITY:
            raise ValueError(f"quantity {quantity_text!r} is too large")
    else:
        quantity = parse_quantity(quantity_text, availability)
    return availability, quantity


def _memo_options(memo: ParseMemo, color: str, size: str) -> Options:
    """`_options`, remembered in `memo` for the pairs seen before."""
    known_options = memo.options
    options_key = (color, size)
    found = known_options.get(options_key)
    if found is None:
        found = _options(color, size)
        if len(known_options) < MAX_MEMO_ENTRIES:
            known_options[options_key] = found
    return found


def _identifiers(sku: str, mpn: str, barcode: str, brand: str) -> tuple[str, str, str]:
    """A row's SKU (else its MPN), barcode and brand, trimmed and checked for length."""
    sku = sku.strip() or mpn.strip()
    if len(sku) > MAX_TEXT_CHARS:
        raise ValueError(f"sku is longer than {MAX_TEXT_CHARS} characters")
    barcode = barcode.strip()
    if len(barcode) > MAX_BARCODE_CHARS:
        raise ValueError(f"gtin is longer than {MAX_BARCODE_CHARS} characters")
    brand = brand.strip()
    if len(brand) > MAX_TEXT_CHARS:
        raise ValueError(f"brand is longer than {MAX_TEXT_CHARS} characters")
    return sku, barcode, brand


def parse_fields(
    values: Sequence[str], default_currency: str | None = None, memo: ParseMemo | None = None
) -> RowParts:
    """`parse_row` of a row given as its `FIELDS` values in order ("" for an absent column)."""
    if memo is None:
        memo = ParseMemo()
    (
        variant_id,
        product_id,
        title,
        description,
        link,
        image_link,
        additional_image_link,
        price_text,
        sale_price_text,
        availability_text,
        quantity_text,
        barcode,
        brand,
        sku,
        mpn,
        color,
        size,
        updated_at_text,
        *grouping,
    ) = values
    variant_id = variant_id.strip()
    if not variant_id:
        raise ValueError("id is missing")
    if len(variant_id) > MAX_ID_CHARS:
        raise ValueError(f"id is longer than {MAX_ID_CHARS} characters")
    title = title.strip()
    if not title:
        raise ValueError("title is missing")
    product_id = product_id.strip() or variant_id
    if len(product_id) > MAX_ID_CHARS:
        raise ValueError(f"item_group_id is longer than {MAX_ID_CHARS} characters")
    price = memo.prices.get(price_text)  # a price as written seen before, and no sale price: nothing to check
    if price is None or sale_price_text:
        price, compare_at = parse_prices(price_text, sale_price_text, default_currency, memo.prices)
    else:
        compare_at = None
    availability, quantity = _stock(availability_text, quantity_text)
    options, variant_title = _memo_options(memo, color, size)
    sku, barcode, brand = _identifiers(sku, mpn, barcode, brand)
    variant = Variant(
        external_id=variant_id,
        title=variant_title or title,
        price=price,
        sku=sku or None,
        barcode=barcode or None,
        compare_at_price=compare_at,
        quantity=quantity,
        options=options,
    )
    image_link = image_link.strip()
    if additional_image_link.strip():
        media = split_links(image_link, additional_image_link)
    else:
        media = (image_link,) if image_link else ()
    groups = _memo_groups(memo, tuple(grouping)) if any(grouping) else NO_GROUPS
    return RowParts(
        product_id,
        title,
        description.strip(),
        brand or None,
        link.strip() or None,
        media,
        parse_updated_at(updated_at_text) if updated_at_text else None,
        availability,
        variant,
        *groups,
    )


def build_product(rows: Sequence[RowParts]) -> Product:
    """One product from consecutive rows of the same group: fields (tags and collections too) from the first
    row, the media of all rows, the latest `updated_at`, and every row's variant in order."""
    if not rows:
        raise ValueError("a product needs at least one row")
    first = rows[0]
    if len(rows) == 1:
        variants: tuple[Variant, ...] = (first.variant,)
        media = first.media
        updated_at = first.updated_at
    else:
        variants = tuple([part.variant for part in rows])
        links: dict[str, None] = {}
        updated_at = None
        for part in rows:
            for link in part.media:
                links[link] = None
            stamp = part.updated_at
            if stamp is not None and (updated_at is None or stamp > updated_at):
                updated_at = stamp
        media = tuple(links)
    return Product(
        external_id=first.product_id,
        title=first.title,
        variants=variants,
        description=first.description,
        vendor=first.vendor,
        url=first.url,
        media=media,
        status=ProductStatus.ACTIVE,
        source_updated_at=updated_at,
        tags=first.tags,
        collections=first.collections,
    )
