"""The catalog sync's binder for how products are grouped, and its reads: the store's collections (bound by
(merchant, external id), as products are), which products are in them (in the store's order), and the
products' tags (matched by `tag_key`).

A pass rewrites the groups of the products whose own fields changed (tags and collections are part of a
product's fingerprint, so a tag added or a collection left is a product update): their rows are replaced,
in bulk, in the pass's transaction. A collection renamed in the store changes the fingerprint of every
product in it, so its row is brought up to date by the same pass. Collections no product is in any more are
kept: a commission rate may name one, and the store may fill it again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from connector.domain.catalog import CollectionRef, Product, clean_collections, clean_tags, tag_key
from connector.infra import bulk_insert
from connector.infra.models_groups import Collection as CollectionRow
from connector.infra.models_groups import ProductCollection, ProductTag

logger = logging.getLogger(__name__)

COLLECTIONS: Table = CollectionRow.__table__  # type: ignore[assignment]
PLACES: Table = ProductCollection.__table__  # type: ignore[assignment]
TAGS: Table = ProductTag.__table__  # type: ignore[assignment]
_RENAME = (
    update(COLLECTIONS)
    .where(COLLECTIONS.c.id == bindparam("collection_id"))
    .values(handle=bindparam("new_handle"), title=bindparam("new_title"), updated_at=bindparam("now"))
)


# --- writes ---------------------------------------------------------------------------------------------------


def bind_collections(
    session: Session, merchant_id: int, refs: Iterable[CollectionRef], now: datetime
) -> dict[str, int]:
    """Collection id by external id for `refs`: stored ones brought up to date (handle, title), new ones
    inserted."""
    wanted: dict[str, CollectionRef] = {}
    for ref in refs:
        wanted.setdefault(ref.external_id, ref)
    if not wanted:
        return {}
    conn = session.connection()
    stored = {
        ext: (cid, handle, title)
        for ext, cid, handle, title in conn.execute(
            select(
                COLLECTIONS.c.external_id, COLLECTIONS.c.id, COLLECTIONS.c.handle, COLLECTIONS.c.title
            ).where(
                COLLECTIONS.c.merchant_id == merchant_id,
                bulk_insert.in_values(conn.dialect.name, COLLECTIONS.c.external_id, list(wanted)),
            )
        )
    }
    renamed = [
        {"collection_id": cid, "new_handle": wanted[ext].handle, "new_title": wanted[ext].title, "now": now}
        for ext, (cid, handle, title) in stored.items()
        if (handle, title) != (wanted[ext].handle, wanted[ext].title)
    ]
    if renamed:
        conn.execute(_RENAME, renamed)
    new = [
        {
            "merchant_id": merchant_id,
            "external_id": ext,
            "handle": ref.handle,
            "title": ref.title,
            "created_at": now,
            "updated_at": now,
        }
        for ext, ref in wanted.items()
        if ext not in stored
    ]
    ids = {ext: row[0] for ext, row in stored.items()}
    if new:
        bulk_insert.insert_many(conn, COLLECTIONS, new)
        made = conn.execute(
            select(COLLECTIONS.c.external_id, COLLECTIONS.c.id).where(
                COLLECTIONS.c.merchant_id == merchant_id,
                bulk_insert.in_values(
                    conn.dialect.name, COLLECTIONS.c.external_id, [r["external_id"] for r in new]
                ),
            )
        )
        ids.update((ext, cid) for ext, cid in made)
        logger.info("collections added", extra={"merchant_id": merchant_id, "count": len(new)})
    return ids


def write(
    session: Session, merchant_id: int, products: Mapping[int, Product], fresh: Collection[int], now: datetime
) -> None:
    """Store the tags and collections of `products` (by product id) in place of what was stored for them;
    `fresh` are the ids of products inserted in this transaction (nothing of theirs to replace)."""
    conn = session.connection()
    stale = [pid for pid in products if pid not in fresh]
    if stale:
        dialect = conn.dialect.name
        conn.execute(delete(TAGS).where(bulk_insert.in_values(dialect, TAGS.c.product_id, stale)))
        conn.execute(delete(PLACES).where(bulk_insert.in_values(dialect, PLACES.c.product_id, stale)))
    groups = {pid: (clean_tags(p.tags), clean_collections(p.collections)) for pid, p in products.items()}
    ids = bind_collections(session, merchant_id, (c for _, refs in groups.values() for c in refs), now)
    tags: list[dict[str, Any]] = [
        {"product_id": pid, "key": tag_key(tag), "merchant_id": merchant_id, "tag": tag}
        for pid, (names, _) in groups.items()
        for tag in names
    ]
    places: list[dict[str, Any]] = [
        {"product_id": pid, "collection_id": ids[ref.external_id], "position": position}
        for pid, (_, refs) in groups.items()
        for position, ref in enumerate(refs)
    ]
    bulk_insert.insert_many(conn, TAGS, tags)
    bulk_insert.insert_many(conn, PLACES, places)


# --- reads ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCollection:
    id: int
    merchant_id: int
    external_id: str
    handle: str
    title: str


@dataclass(slots=True)
class Groups:
    """A stored product's tags (in `tag_key` order) and collections (in the store's order)."""

    tags: list[str] = field(default_factory=list)
    collections: list[StoredCollection] = field(default_factory=list)


def read(session: Session, product_ids: Collection[int]) -> dict[int, Groups]:
    """The groups of each of `product_ids` (two queries; a product without any has empty ones)."""
    found = {pid: Groups() for pid in product_ids}
    if not found:
        return found
    dialect = session.get_bind().dialect.name
    ids = list(found)
    for pid, tag in session.execute(
        select(ProductTag.product_id, ProductTag.tag)
        .where(bulk_insert.in_values(dialect, ProductTag.product_id, ids))
        .order_by(ProductTag.product_id, ProductTag.key)
    ):
        found[pid].tags.append(tag)
    for pid, row in session.execute(
        select(ProductCollection.product_id, CollectionRow)
        .join(CollectionRow, CollectionRow.id == ProductCollection.collection_id)
        .where(bulk_insert.in_values(dialect, ProductCollection.product_id, ids))
        .order_by(ProductCollection.product_id, ProductCollection.position)
    ):
        found[pid].collections.append(
            StoredCollection(row.id, row.merchant_id, row.external_id, row.handle, row.title)
        )
    return found


def tag_filter(merchant_ids: Iterable[int] | None, tag: str) -> Any:
    """A subquery of the ids of products tagged `tag` (any spelling of it), among `merchant_ids` when given."""
    query = select(ProductTag.product_id).where(ProductTag.key == tag_key(tag))
    if merchant_ids is not None:
        query = query.where(ProductTag.merchant_id.in_(list(merchant_ids)))
    return query


def collection_filter(
    merchant_ids: Iterable[int] | None, *, handle: str | None = None, collection_id: int | None = None
) -> Any:
    """A subquery of the ids of products in a collection named by its handle (or its external id) among
    `merchant_ids`, or by its id."""
    query = select(ProductCollection.product_id).join(
        CollectionRow, CollectionRow.id == ProductCollection.collection_id
    )
    if collection_id is not None:
        query = query.where(CollectionRow.id == collection_id)
    if handle is not None:
        query = query.where(
            (CollectionRow.handle == handle.strip().lower()) | (CollectionRow.external_id == handle)
        )
    if merchant_ids is not None:
        query = query.where(CollectionRow.merchant_id.in_(list(merchant_ids)))
    return query
