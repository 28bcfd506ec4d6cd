"""Catalog domain types: products, variants and inventory levels as stores describe them, normalized, with
the tags and collections a product carries (`clean_tags`, `clean_collections` and `handle_of` normalize what
an adapter reads, so every store's products compare alike)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Final

from connector.domain.money import Money

MAX_TAGS: Final = 250
"""Tags kept per product (the first ones in `tag_key` order)."""
MAX_TAG_CHARS: Final = 255
MAX_COLLECTIONS: Final = 50
"""Collections kept per product, in the store's order."""
MAX_COLLECTION_CHARS: Final = 255
_NOT_SLUG = re.compile(r"[\W_]+")


class ProductStatus(StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"


STATUS_TEXT: Final[dict[ProductStatus, str]] = {status: status.value for status in ProductStatus}
"""Each status's text, looked up without the enum's `value` descriptor (read once per row in a sync)."""


def _digest(*parts: object) -> str:
    """Stable fingerprint of plain values (str, int, None, tuples of them): their repr, hashed."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).hexdigest()


@lru_cache(maxsize=16384)
def tag_key(tag: str) -> str:
    """The form two spellings of one tag share (`Summer` and `summer `): trimmed, NFKC, case-folded."""
    return unicodedata.normalize("NFKC", tag).strip().casefold()


def clean_tags(values: Iterable[object]) -> tuple[str, ...]:
    """A product's tags as stored: text only, trimmed, non-empty, at most `MAX_TAG_CHARS` characters, one per
    `tag_key` (the first spelling wins), in `tag_key` order, at most `MAX_TAGS`."""
    found: dict[str, str] = {}
    for value in values:
        if not isinstance(value, str):
            continue
        tag = " ".join(value.split())[:MAX_TAG_CHARS]
        key = tag_key(tag)
        if key and key not in found:
            found[key] = tag
    return tuple(found[key] for key in sorted(found))[:MAX_TAGS]


def handle_of(title: str) -> str:
    """A collection handle made from a title, for stores that have none: its letters and digits, case-folded,
    in runs joined by `-` (`Home > Kitchen & Dining` -> `home-kitchen-dining`)."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return _NOT_SLUG.sub("-", folded).strip("-")[:MAX_COLLECTION_CHARS]


@dataclass(frozen=True, slots=True)
class CollectionRef:
    """A store collection (or category) a product belongs to: the store's stable id for it, its handle (the
    URL name: unique in a store, lower-case) and its title."""

    external_id: str
    handle: str
    title: str


def clean_collections(values: Iterable[CollectionRef]) -> tuple[CollectionRef, ...]:
    """A product's collections as stored: one per external id (the first wins), with an id, a handle (made from
    the title when the store gave none) and a title cut to `MAX_COLLECTION_CHARS`, in the store's order, at
    most `MAX_COLLECTIONS`."""
    found: dict[str, CollectionRef] = {}
    for value in values:
        ref = value.external_id.strip()[:MAX_COLLECTION_CHARS]
        title = " ".join(value.title.split())[:MAX_COLLECTION_CHARS]
        handle = value.handle.strip().lower()[:MAX_COLLECTION_CHARS] or handle_of(title)
        if ref and handle and ref not in found:
            found[ref] = CollectionRef(ref, handle, title or handle)
        if len(found) == MAX_COLLECTIONS:
            break
    return tuple(found.values())


@dataclass(frozen=True, slots=True)
class Variant:
    """One sellable unit of a product. `quantity` is the store's on-hand figure, None when not tracked."""

    external_id: str
    title: str
    price: Money
    sku: str | None = None
    barcode: str | None = None
    compare_at_price: Money | None = None
    status: ProductStatus = ProductStatus.ACTIVE
    inventory_item_ref: str | None = None
    quantity: int | None = None
    options: tuple[tuple[str, str], ...] = ()

    def content_hash(self) -> str:
        """Fingerprint of everything but stock, so a price or title change is seen and a re-read is not."""
        compare = self.compare_at_price.minor if self.compare_at_price else None
        return _digest(
            self.external_id,
            self.title,
            self.price.minor,
            self.price.currency,
            self.sku,
            self.barcode,
            compare,
            STATUS_TEXT[self.status],
            self.inventory_item_ref,
            self.options,
        )


@dataclass(frozen=True, slots=True)
class Product:
    """A product with its variants. A stream may yield the same product more than once with a part of its
    variants each time; the catalog sync merges them."""

    external_id: str
    title: str
    variants: tuple[Variant, ...]
    description: str = ""
    vendor: str | None = None
    url: str | None = None
    media: tuple[str, ...] = ()
    status: ProductStatus = ProductStatus.ACTIVE
    source_updated_at: datetime | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())
    tags: tuple[str, ...] = ()
    """As `clean_tags` makes them."""
    collections: tuple[CollectionRef, ...] = ()
    """As `clean_collections` makes them."""

    def content_hash(self) -> str:
        """Fingerprint of the product's own fields (not its variants'). Tags and collections count only when
        there are some, so a product without any keeps the fingerprint it had before products carried them."""
        parts: tuple[object, ...] = (
            self.external_id,
            self.title,
            self.description,
            self.vendor,
            self.url,
            self.media,
            STATUS_TEXT[self.status],
            self.extra,
        )
        if self.tags or self.collections:
            groups = tuple((c.external_id, c.handle, c.title) for c in self.collections)
            parts = (*parts, self.tags, groups)
        return _digest(*parts)


@dataclass(frozen=True, slots=True)
class InventoryLevel:
    """Stock of one variant at one location, as of `source_updated_at` in the store."""

    variant_external_id: str
    location_ref: str
    available: int | None
    source_updated_at: datetime | None = None
