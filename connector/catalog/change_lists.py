"""Dry-run change lists: what a catalog pass would change, field by field, with the stored value before and
the store's value after, so support can read a dry run without knowing the content hashes behind it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.catalog import groups
from connector.domain.catalog import Product, Variant, clean_collections, clean_tags
from connector.domain.money import Money
from connector.infra import bulk_insert
from connector.infra.models import Product as ProductRow
from connector.infra.models import Variant as VariantRow

Fields = dict[str, Any]


def _money(minor: int | None, currency: str) -> str | None:
    return None if minor is None else str(Money(minor, currency))


def _options(options: Any) -> list[str]:
    return [f"{name}: {value}" for name, value in options or ()]


def product_fields(p: Product) -> Fields:
    """The fields of a product a change list compares, as displayed."""
    return {
        "title": p.title,
        "description": p.description,
        "vendor": p.vendor,
        "url": p.url,
        "media": list(p.media),
        "status": p.status.value,
        "tags": list(clean_tags(p.tags)),
        "collections": [c.title for c in clean_collections(p.collections)],
    }


def variant_fields(v: Variant, product_ext: str) -> Fields:
    """The fields of a variant a change list compares, as displayed (prices as amounts with currency)."""
    return {
        "product": product_ext,
        "title": v.title,
        "sku": v.sku,
        "barcode": v.barcode,
        "price": str(v.price),
        "compare_at": str(v.compare_at_price) if v.compare_at_price else None,
        "status": v.status.value,
        "options": _options(v.options),
    }


def stored_products(session: Session, merchant_id: int, exts: Collection[str]) -> dict[str, Fields]:
    """`product_fields` of the stored products with these external ids."""
    if not exts:
        return {}
    dialect = session.get_bind().dialect.name
    rows = (
        session.execute(
            select(ProductRow).where(
                ProductRow.merchant_id == merchant_id,
                bulk_insert.in_values(dialect, ProductRow.external_id, list(exts)),
            )
        )
        .scalars()
        .all()
    )
    stored = groups.read(session, [r.id for r in rows])
    return {
        r.external_id: {
            "title": r.title,
            "description": r.description,
            "vendor": r.vendor,
            "url": r.url,
            "media": list(r.media or ()),
            "status": r.status,
            "tags": stored[r.id].tags,
            "collections": [c.title for c in stored[r.id].collections],
        }
        for r in rows
    }


def stored_variants(session: Session, merchant_id: int, exts: Collection[str]) -> dict[str, Fields]:
    """`variant_fields` of the stored variants with these external ids."""
    if not exts:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        select(VariantRow, ProductRow.external_id)
        .join(ProductRow, ProductRow.id == VariantRow.product_id)
        .where(
            VariantRow.merchant_id == merchant_id,
            bulk_insert.in_values(dialect, VariantRow.external_id, list(exts)),
        )
    ).all()
    return {
        v.external_id: {
            "product": product_ext,
            "title": v.title,
            "sku": v.sku,
            "barcode": v.barcode,
            "price": _money(v.price_minor, v.currency),
            "compare_at": _money(v.compare_at_minor, v.currency),
            "status": v.status,
            "options": _options(v.options),
        }
        for v, product_ext in rows
    }


def changes(before: Fields | None, after: Fields) -> dict[str, list[Any]]:
    """field -> [before, after] for every field that differs (all of them, before None, when `before` is)."""
    old = before or {}
    return {name: [old.get(name), value] for name, value in after.items() if old.get(name) != value}
