"""Catalog domain types: products, variants and inventory levels as stores describe them, normalized."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from connector.domain.money import Money


class ProductStatus(StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"


def _digest(*parts: object) -> str:
    """Stable fingerprint of plain values (str, int, None, tuples of them): their repr, hashed."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).hexdigest()


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
            str(self.status),
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

    def content_hash(self) -> str:
        return _digest(
            self.external_id,
            self.title,
            self.description,
            self.vendor,
            self.url,
            self.media,
            str(self.status),
            self.extra,
        )


@dataclass(frozen=True, slots=True)
class InventoryLevel:
    """Stock of one variant at one location, as of `source_updated_at` in the store."""

    variant_external_id: str
    location_ref: str
    available: int | None
    source_updated_at: datetime | None = None
