"""The catalog sync's binder: a batch's stored products, variants and stock levels read by (merchant,
external id), the row values of a domain product or variant, and rows inserted, updated and soft-deleted in
bulk (SQLAlchemy Core, no ORM bookkeeping per row)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from connector.catalog.levels import reserved_by_variant
from connector.domain.catalog import STATUS_TEXT, Product, Variant
from connector.infra import bulk_insert
from connector.infra.models import InventoryLevel as LevelRow
from connector.infra.models import Product as ProductRow
from connector.infra.models import Variant as VariantRow

DELETED = "deleted"

LEVELS: Table = LevelRow.__table__  # type: ignore[assignment]
PRODUCTS: Table = ProductRow.__table__  # type: ignore[assignment]
VARIANTS: Table = VariantRow.__table__  # type: ignore[assignment]
LEVEL_UPDATE = (
    update(LEVELS)
    .where(LEVELS.c.id == bindparam("level_id"))
    .values(
        available=bindparam("new_available"),
        source_updated_at=bindparam("new_source_updated_at"),
        version=LEVELS.c.version + 1,
        updated_at=bindparam("now"),
    )
)
"""A stock level's new figure and store time by level id (parameters `level_id`, `new_available`,
`new_source_updated_at`, `now`), its version bumped."""


@dataclass(frozen=True, slots=True)
class StoredRows:
    """What the database holds for one batch, by external id."""

    products: dict[str, tuple[int, str]]
    """external id -> (product id, content hash)"""
    variants: dict[str, tuple[int, int, str]]
    """external id -> (variant id, product id, content hash)"""
    levels: dict[int, tuple[int, int, datetime | None]]
    """variant id -> (level id, available, store time) at the merchant's location"""
    reserved: dict[int, int]
    """variant id -> units held by reservations"""


def read_stored(
    session: Session,
    merchant_id: int,
    location: str,
    product_refs: Collection[str],
    variant_refs: Collection[str],
) -> StoredRows:
    """The stored rows of a batch's products and variants, with the variants' levels at `location` and
    the units reservations hold. Core selects on the session's connection, each result fetched whole: no ORM
    result machinery and no fetch per row."""
    conn = session.connection()
    dialect = conn.dialect.name
    p, v, lv = PRODUCTS.c, VARIANTS.c, LEVELS.c
    products = {
        ext: (pid, h)
        for ext, pid, h in conn.execute(
            select(p.external_id, p.id, p.content_hash).where(
                p.merchant_id == merchant_id,
                bulk_insert.in_values(dialect, p.external_id, list(product_refs)),
            )
        ).all()
    }
    variants = {
        ext: (vid, pid, h)
        for ext, vid, pid, h in conn.execute(
            select(v.external_id, v.id, v.product_id, v.content_hash).where(
                v.merchant_id == merchant_id,
                bulk_insert.in_values(dialect, v.external_id, list(variant_refs)),
            )
        ).all()
    }
    variant_ids = [row[0] for row in variants.values()]
    levels: dict[int, tuple[int, int, datetime | None]] = {}
    reserved: dict[int, int] = {}
    if variant_ids:
        levels = {
            vid: (lid, avail, seen)
            for vid, lid, avail, seen in conn.execute(
                select(lv.variant_id, lv.id, lv.available, lv.source_updated_at).where(
                    bulk_insert.in_values(dialect, lv.variant_id, variant_ids), lv.location_ref == location
                )
            ).all()
        }
        reserved = reserved_by_variant(session, variant_ids, dialect)
    return StoredRows(products, variants, levels, reserved)


def newer(stored: datetime | None, as_of: datetime | None) -> bool:
    """Whether a stored level's store time is later than a catalog pass's figures."""
    return stored is not None and as_of is not None and stored > as_of


def bulk_update(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE by primary key for many rows in one executemany (Core: no ORM bookkeeping per row)."""
    if not rows:
        return
    params = [{("_id" if k == "id" else k): v for k, v in row.items()} for row in rows]
    session.connection().execute(update(table).where(table.c.id == bindparam("_id")), params)


def bulk_insert_rows(
    session: Session, table: Table, merchant_id: int, rows: list[dict[str, Any]]
) -> dict[str, int]:
    """INSERT many bound rows; returns external id -> new primary key."""
    if not rows:
        return {}
    conn = session.connection()
    bulk_insert.insert_many(conn, table, rows)
    created = conn.execute(
        select(table.c.external_id, table.c.id).where(
            table.c.merchant_id == merchant_id,
            bulk_insert.in_values(conn.dialect.name, table.c.external_id, [r["external_id"] for r in rows]),
        )
    )
    return {ext: pk for ext, pk in created.all()}


def product_values(p: Product, content_hash: str) -> dict[str, Any]:
    return {
        "title": p.title,
        "description": p.description,
        "vendor": p.vendor,
        "url": p.url,
        "media": p.media,
        "status": STATUS_TEXT[p.status],
        "source_updated_at": p.source_updated_at,
        "content_hash": content_hash,
    }


def variant_values(v: Variant, content_hash: str) -> dict[str, Any]:
    return {
        "title": v.title,
        "sku": v.sku,
        "barcode": v.barcode,
        "price_minor": v.price.minor,
        "compare_at_minor": v.compare_at_price.minor if v.compare_at_price else None,
        "currency": v.price.currency,
        "status": STATUS_TEXT[v.status],
        "inventory_item_ref": v.inventory_item_ref,
        "inventory_tracked": v.quantity is not None,
        "options": v.options,
        "content_hash": content_hash,
    }


def merge(batch: Iterable[Product]) -> dict[str, Product]:
    """One Product per external id within a batch (a stream may repeat a product with more variants)."""
    merged: dict[str, Product] = {}
    for product in batch:
        prior = merged.get(product.external_id)
        if prior is None:
            merged[product.external_id] = product
        else:
            variants = {v.external_id: v for v in prior.variants}
            variants.update((v.external_id, v) for v in product.variants)
            merged[product.external_id] = Product(
                **{
                    **{f: getattr(product, f) for f in Product.__slots__},
                    "variants": tuple(variants.values()),
                }
            )
    return merged


STREAM_ROWS = 10_000
"""Rows fetched at a time when a full pass reads back every stored row of a merchant."""


def unseen(
    session: Session, merchant_id: int, seen_products: Collection[str], seen_variants: Collection[str]
) -> tuple[list[tuple[int, str]], list[tuple[int, str, int]]]:
    """The merchant's live products (id, external id) and variants (id, external id, product id) that a
    full pass did not see. The stored rows are streamed (a server-side cursor on PostgreSQL), so only the
    unseen ones are held: buffering a 1M-variant catalog's rows doubled a sync's peak RSS."""
    products = [
        (pid, ext)
        for pid, ext in session.execute(
            select(ProductRow.id, ProductRow.external_id)
            .where(ProductRow.merchant_id == merchant_id, ProductRow.status != DELETED)
            .execution_options(yield_per=STREAM_ROWS)
        )
        if ext not in seen_products
    ]
    variants = [
        (vid, ext, pid)
        for vid, ext, pid in session.execute(
            select(VariantRow.id, VariantRow.external_id, VariantRow.product_id)
            .where(VariantRow.merchant_id == merchant_id, VariantRow.status != DELETED)
            .execution_options(yield_per=STREAM_ROWS)
        )
        if ext not in seen_variants
    ]
    return products, variants


def live_counts(session: Session, merchant_id: int) -> tuple[int, int]:
    """How many of the merchant's products and variants are not deleted (two index-only counts)."""
    conn = session.connection()
    counts = [
        conn.execute(
            select(func.count())
            .select_from(table)
            .where(table.c.merchant_id == merchant_id, table.c.status != DELETED)
        ).scalar_one()
        for table in (PRODUCTS, VARIANTS)
    ]
    return counts[0], counts[1]


def soft_delete(session: Session, table: Table, ids: Iterable[int], now: datetime) -> None:
    """Mark rows deleted (their ids stay: order history points at them)."""
    bulk_update(
        session,
        table,
        [{"id": row_id, "status": DELETED, "content_hash": DELETED, "updated_at": now} for row_id in ids],
    )


def live_product(session: Session, merchant_id: int) -> int | None:
    """Any product of the merchant not deleted, or None."""
    return session.scalar(
        select(ProductRow.id)
        .where(ProductRow.merchant_id == merchant_id, ProductRow.status != DELETED)
        .limit(1)
    )


def external_ids(session: Session, product_ids: Collection[int]) -> dict[int, str]:
    """Product id -> external id."""
    if not product_ids:
        return {}
    found = session.execute(
        select(ProductRow.id, ProductRow.external_id).where(ProductRow.id.in_(product_ids))
    )
    return dict(found.all())
