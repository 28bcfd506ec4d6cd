"""Catalog synchronizer: streams a store's catalog into products, variants and levels, diffing by content hash.

The flow follows the binder / mapper / synchronizer split: the adapter maps store records to domain types,
the (merchant, external id) unique keys bind them to rows, and this module decides what changed. Work is
done in batches of `batch_size` variants, one transaction each, so memory stays flat whatever the catalog
size; only the set of external ids seen in a full pass is kept, to find what disappeared.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from connector.catalog import change_lists
from connector.catalog.levels import reserved_by_variant, sellable
from connector.domain import event_types
from connector.domain.catalog import Product, Variant
from connector.domain.errors import PermanentError
from connector.domain.ports import StoreAdapter
from connector.infra import bulk_insert, outbox
from connector.infra.db import Database
from connector.infra.models import InventoryLevel as LevelRow
from connector.infra.models import Merchant, SyncRun
from connector.infra.models import Product as ProductRow
from connector.infra.models import Variant as VariantRow

logger = logging.getLogger(__name__)

DELETED = "deleted"
INCREMENTAL_OVERLAP = timedelta(minutes=5)
MAX_RECORDED_ERRORS = 1000
MAX_RECORDED_DIFF = 1000

_levels: Table = LevelRow.__table__  # type: ignore[assignment]
_products: Table = ProductRow.__table__  # type: ignore[assignment]
_variants: Table = VariantRow.__table__  # type: ignore[assignment]
_level_update = (
    update(_levels)
    .where(_levels.c.id == bindparam("level_id"))
    .values(
        available=bindparam("new_available"),
        source_updated_at=bindparam("new_source_updated_at"),
        version=_levels.c.version + 1,
        updated_at=bindparam("now"),
    )
)


def _newer(stored: datetime | None, as_of: datetime | None) -> bool:
    """Whether a stored level's store time is later than a catalog pass's figures."""
    return stored is not None and as_of is not None and stored > as_of


def _bulk_update(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE by primary key for many rows in one executemany (Core: no ORM bookkeeping per row)."""
    if not rows:
        return
    params = [{("_id" if k == "id" else k): v for k, v in row.items()} for row in rows]
    session.connection().execute(update(table).where(table.c.id == bindparam("_id")), params)


def _bulk_insert(
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
    return {ext: pk for ext, pk in created}


class LeaseLostError(Exception):
    """Another worker took this run over (ours was presumed dead); stop without writing."""


@dataclass
class SyncCounts:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed_rows: int = 0
    events_emitted: int = 0
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    diff: list[dict[str, Any]] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "failed_rows": self.failed_rows,
            "events_emitted": self.events_emitted,
        }


def _product_values(p: Product, content_hash: str) -> dict[str, Any]:
    return {
        "title": p.title,
        "description": p.description,
        "vendor": p.vendor,
        "url": p.url,
        "media": p.media,
        "status": p.status.value,
        "source_updated_at": p.source_updated_at,
        "content_hash": content_hash,
    }


def _variant_values(v: Variant, content_hash: str) -> dict[str, Any]:
    return {
        "title": v.title,
        "sku": v.sku,
        "barcode": v.barcode,
        "price_minor": v.price.minor,
        "compare_at_minor": v.compare_at_price.minor if v.compare_at_price else None,
        "currency": v.price.currency,
        "status": v.status.value,
        "inventory_item_ref": v.inventory_item_ref,
        "inventory_tracked": v.quantity is not None,
        "options": v.options,
        "content_hash": content_hash,
    }


def _merge(batch: Iterable[Product]) -> dict[str, Product]:
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


class CatalogSync:
    """One catalog pass for one merchant, recorded in one SyncRun (held by `lease_token`)."""

    def __init__(
        self,
        db: Database,
        adapter: StoreAdapter,
        *,
        merchant_id: int,
        run_id: int,
        lease_token: str,
        batch_size: int = 1000,
        full: bool = True,
        dry_run: bool = False,
    ):
        self.db = db
        self.adapter = adapter
        self.merchant_id = merchant_id
        self.run_id = run_id
        self.lease_token = lease_token
        self.batch_size = batch_size
        self.full = full
        self.dry_run = dry_run
        self.counts = SyncCounts()
        self._seen_products: set[str] = set()
        self._seen_variants: set[str] = set()
        with db.session() as session:
            merchant = session.get(Merchant, merchant_id)
            if merchant is None:
                raise PermanentError(f"merchant {merchant_id} no longer exists", code="merchant_not_found")
            self.location = merchant.location_ref or "default"
            self.buffer = merchant.inventory_buffer
            self.watermark = merchant.catalog_watermark
        self.as_of: datetime | None = None
        """When the pass began: the store's figures it reads are at least this recent, so a stored level
        newer than this (a stock webhook that arrived meanwhile) is kept, and levels written carry it."""

    # -- the pass ------------------------------------------------------------------------------------------

    def run(self) -> SyncCounts:
        started = self.as_of = datetime.now(UTC)
        since = None if self.full or self.watermark is None else self.watermark - INCREMENTAL_OVERLAP
        batch: list[Product] = []
        pending = 0
        for product in self.adapter.iter_catalog(since):
            batch.append(product)
            pending += len(product.variants)
            if pending >= self.batch_size:
                self._flush(batch)
                batch, pending = [], 0
        if batch:
            self._flush(batch)
        self._record_row_errors()
        # A row that failed to parse this time is not a row that disappeared: keep its variant, and the
        # product it names (an adapter names the product of a refused record too).
        skipped = set(self.adapter.catalog_skipped_refs())
        self._seen_variants |= skipped
        self._seen_products |= skipped
        if skipped:
            with self.db.session() as session:
                dialect = session.get_bind().dialect.name
                self._seen_products.update(
                    session.scalars(
                        select(ProductRow.external_id)
                        .join(VariantRow, VariantRow.product_id == ProductRow.id)
                        .where(
                            VariantRow.merchant_id == self.merchant_id,
                            bulk_insert.in_values(dialect, VariantRow.external_id, sorted(skipped)),
                        )
                    )
                )
        if self.full:
            self._delete_unseen()
        with self.db.session() as session:
            self._touch(session, final=True)
            if not self.dry_run:
                session.execute(
                    update(Merchant).where(Merchant.id == self.merchant_id).values(catalog_watermark=started)
                )
        return self.counts

    def _refuse_all_bad(self) -> None:
        """Fail a pass in which every row was bad: it synced nothing, and must not delete the catalog."""
        with self.db.session() as session:
            self._touch(session, final=True)
        first = self.counts.row_errors[0] if self.counts.row_errors else None
        example = f" (line {first['line']}: {first['error']})" if first else ""
        raise PermanentError(
            f"every one of the {self.counts.failed_rows} rows read was unusable{example}; nothing was synced",
            code="no_usable_rows",
        )

    def _record_row_errors(self) -> None:
        """Record the pass's bad rows (counted in rows read too); a pass that could use none is refused."""
        errors = self.adapter.iter_catalog_errors()
        self.counts.failed_rows = self.adapter.skipped_count
        self.counts.row_errors = [
            {"line": line, "error": reason} for line, reason in errors[:MAX_RECORDED_ERRORS]
        ]
        for line, reason in errors[:20]:
            logger.warning(
                "catalog row skipped",
                extra={"merchant_id": self.merchant_id, "run_id": self.run_id, "line": line, "error": reason},
            )
        usable = self.counts.rows_read
        self.counts.rows_read += self.counts.failed_rows  # rows read: the bad ones too
        if usable == 0 and self.counts.failed_rows and (self.full or self.watermark is None):
            self._refuse_all_bad()  # a pass that read every row and could use none

    # -- one batch ------------------------------------------------------------------------------------------

    def _flush(self, batch: list[Product]) -> None:
        with self._writes() as session:
            self.counts.events_emitted += self._apply(session, _merge(batch))

    @contextmanager
    def _writes(self) -> Iterator[Session]:
        """A transaction for catalog writes that commits with the run's counters, or rolls back on a dry run."""
        session = self.db.sessions()
        try:
            session.begin()
            yield session
            if self.dry_run:
                session.rollback()
                with self.db.session() as counters:
                    self._touch(counters)
            else:
                self._touch(session)
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _apply(self, session: Session, products: dict[str, Product]) -> int:
        now = datetime.now(UTC)
        m = self.merchant_id
        variants: dict[str, tuple[Variant, str]] = {}
        for p in products.values():
            for v in p.variants:
                variants[v.external_id] = (v, p.external_id)
        self._seen_products.update(products)
        self._seen_variants.update(variants)
        dialect = session.get_bind().dialect.name

        stored_p = {
            ext: (pid, h)
            for ext, pid, h in session.execute(
                select(ProductRow.external_id, ProductRow.id, ProductRow.content_hash).where(
                    ProductRow.merchant_id == m,
                    bulk_insert.in_values(dialect, ProductRow.external_id, list(products)),
                )
            )
        }
        stored_v = {
            ext: (vid, pid, h)
            for ext, vid, pid, h in session.execute(
                select(
                    VariantRow.external_id, VariantRow.id, VariantRow.product_id, VariantRow.content_hash
                ).where(
                    VariantRow.merchant_id == m,
                    bulk_insert.in_values(dialect, VariantRow.external_id, list(variants)),
                )
            )
        }
        existing_variant_ids = [row[0] for row in stored_v.values()]
        stored_levels: dict[int, tuple[int, int, datetime | None]] = {}
        reserved: dict[int, int] = {}
        if existing_variant_ids:
            stored_levels = {
                vid: (lid, avail, seen)
                for vid, lid, avail, seen in session.execute(
                    select(
                        LevelRow.variant_id, LevelRow.id, LevelRow.available, LevelRow.source_updated_at
                    ).where(
                        bulk_insert.in_values(dialect, LevelRow.variant_id, existing_variant_ids),
                        LevelRow.location_ref == self.location,
                    )
                )
            }
            reserved = reserved_by_variant(session, existing_variant_ids, dialect)

        # Products: insert new, update changed.
        changed_products: dict[str, str] = {}  # external id -> "created" | "updated"
        p_hash = {ext: p.content_hash() for ext, p in products.items()}
        v_hash = {ext: v.content_hash() for ext, (v, _) in variants.items()}
        stored_fields = (
            self._before(session, stored_p, stored_v, p_hash, v_hash) if self.dry_run else ({}, {})
        )
        new_p = [ext for ext in products if ext not in stored_p]
        upd_p = []
        for ext, (pid, h) in stored_p.items():
            if p_hash[ext] != h:
                upd_p.append({"id": pid, "updated_at": now, **_product_values(products[ext], p_hash[ext])})
                changed_products[ext] = "updated"
        retitled = set(changed_products)  # products whose own fields changed: every row of theirs did
        product_ids = {ext: row[0] for ext, row in stored_p.items()}
        if new_p:
            rows = [
                {
                    "merchant_id": m,
                    "external_id": ext,
                    "created_at": now,
                    "updated_at": now,
                    **_product_values(products[ext], p_hash[ext]),
                }
                for ext in new_p
            ]
            for ext, pid in _bulk_insert(session, _products, m, rows).items():
                product_ids[ext] = pid
                changed_products[ext] = "created"
        if upd_p:
            _bulk_update(session, _products, upd_p)

        # Variants: insert new, update changed (a variant may move to another product).
        new_v = []
        upd_v = []
        changed_variants: set[str] = set()
        for ext, (variant, product_ext) in variants.items():
            pid = product_ids[product_ext]
            if ext not in stored_v:
                new_v.append(
                    {
                        "merchant_id": m,
                        "product_id": pid,
                        "external_id": ext,
                        "created_at": now,
                        "updated_at": now,
                        **_variant_values(variant, v_hash[ext]),
                    }
                )
                continue
            vid, stored_pid, h = stored_v[ext]
            if v_hash[ext] != h or stored_pid != pid:
                upd_v.append(
                    {"id": vid, "product_id": pid, "updated_at": now, **_variant_values(variant, v_hash[ext])}
                )
                changed_variants.add(ext)
                changed_products.setdefault(product_ext, "updated")
        variant_ids = {ext: row[0] for ext, row in stored_v.items()}
        if new_v:
            for ext, vid in _bulk_insert(session, _variants, m, new_v).items():
                variant_ids[ext] = vid
                changed_variants.add(ext)
                changed_products.setdefault(variants[ext][1], "updated")
        if upd_v:
            _bulk_update(session, _variants, upd_v)

        # Inventory levels at the merchant's location. `inventory.updated` reports a change of sellable stock
        # the platform already knew; a new variant's stock travels in its product's `product.updated`.
        stock: dict[str, int | None] = {}
        new_levels = []
        upd_levels = []
        inventory_events = []
        changed_stock: set[str] = set()
        for ext, (variant, product_ext) in variants.items():
            if variant.quantity is None:
                stock[ext] = None
                continue
            vid = variant_ids[ext]
            held = reserved.get(vid, 0)
            after = stock[ext] = sellable(variant.quantity, held, self.buffer)
            level = stored_levels.get(vid)
            if level is not None and (level[1] == variant.quantity or _newer(level[2], self.as_of)):
                if level[1] != variant.quantity:  # a stock webhook newer than this pass's figures stands
                    stock[ext] = sellable(level[1], held, self.buffer)
                continue
            before = sellable(level[1], held, self.buffer) if level else None
            if level is None:
                new_levels.append(
                    {
                        "merchant_id": m,
                        "variant_id": vid,
                        "location_ref": self.location,
                        "available": variant.quantity,
                        "source_updated_at": self.as_of,
                        "version": 1,
                        "updated_at": now,
                    }
                )
            else:
                upd_levels.append(
                    {
                        "level_id": level[0],
                        "new_available": variant.quantity,
                        "new_source_updated_at": self.as_of,
                        "now": now,
                    }
                )
            changed_stock.add(ext)
            if before != after and ext in stored_v:
                inventory_events.append(
                    outbox.DomainEvent(
                        event_types.INVENTORY_UPDATED,
                        m,
                        {
                            "variant_id": vid,
                            "external_id": ext,
                            "product_id": product_ids[product_ext],
                            "location": self.location,
                            "available": variant.quantity,
                            "sellable": after,
                            "previous_sellable": before,
                        },
                        now,
                    )
                )
        if new_levels:
            bulk_insert.insert_many(session.connection(), _levels, new_levels)
        if upd_levels:
            session.connection().execute(_level_update, upd_levels)

        # Counts per variant row.
        for ext in variants:
            if ext not in stored_v:
                self.counts.created += 1
            elif ext in changed_variants or ext in changed_stock or variants[ext][1] in retitled:
                self.counts.updated += 1
            else:
                self.counts.unchanged += 1
        self.counts.rows_read += len(variants)

        product_events = [
            outbox.DomainEvent(
                event_types.PRODUCT_UPDATED,
                m,
                self._product_payload(products[ext], product_ids[ext], variant_ids, stock, change),
                now,
            )
            for ext, change in changed_products.items()
        ]
        if self.dry_run:
            stock_before = {
                ext: level[1] if (level := stored_levels.get(variant_ids[ext])) else None
                for ext in changed_stock
            }
            self._record_diff(
                products, changed_products, changed_variants, variants, stored_fields, stock_before
            )
        return outbox.publish(session, product_events + inventory_events)

    @staticmethod
    def _product_payload(
        p: Product, pid: int, variant_ids: dict[str, int], stock: dict[str, int | None], change: str
    ) -> dict[str, Any]:
        return {
            "change": change,
            "product": {
                "id": pid,
                "external_id": p.external_id,
                "title": p.title,
                "status": p.status.value,
                "url": p.url,
            },
            "variants": [
                {
                    "id": variant_ids[v.external_id],
                    "external_id": v.external_id,
                    "sku": v.sku,
                    "currency": v.price.currency,
                    "price_minor": v.price.minor,
                    "compare_at_minor": v.compare_at_price.minor if v.compare_at_price else None,
                    "sellable": stock.get(v.external_id),
                }
                for v in p.variants
            ],
        }

    def _before(
        self,
        session: Session,
        stored_p: dict[str, tuple[int, str]],
        stored_v: dict[str, tuple[int, int, str]],
        p_hash: dict[str, str],
        v_hash: dict[str, str],
    ) -> tuple[dict[str, change_lists.Fields], dict[str, change_lists.Fields]]:
        """A dry run's stored fields of the products and variants this batch changes, read before it writes."""
        if len(self.counts.diff) >= MAX_RECORDED_DIFF:
            return {}, {}
        batch_pids = {pid for pid, _ in stored_p.values()}
        products = [ext for ext, (_, h) in stored_p.items() if p_hash[ext] != h]
        variants = [ext for ext, (_, pid, h) in stored_v.items() if v_hash[ext] != h or pid not in batch_pids]
        return (
            change_lists.stored_products(session, self.merchant_id, products),
            change_lists.stored_variants(session, self.merchant_id, variants),
        )

    def _record_diff(
        self,
        products: dict[str, Product],
        changed_products: dict[str, str],
        changed_variants: set[str],
        variants: dict[str, tuple[Variant, str]],
        before: tuple[dict[str, change_lists.Fields], dict[str, change_lists.Fields]],
        stock_before: dict[str, int | None],
    ) -> None:
        """A dry run's change list: created products, and per field the stored value and the store's."""
        old_products, old_variants = before
        diff: list[dict[str, Any]] = []
        for ext, change in changed_products.items():
            p = products[ext]
            if change == "created":
                diff.append({"op": "created", "product": ext, "changes": {"title": [None, p.title]}})
                continue
            fields = change_lists.changes(old_products.get(ext), change_lists.product_fields(p))
            if ext in old_products and fields:
                diff.append({"op": "updated", "product": ext, "changes": fields})
        for ext in changed_variants:
            variant, product_ext = variants[ext]
            if changed_products.get(product_ext) == "created":
                continue  # part of the created product
            after = change_lists.variant_fields(variant, product_ext)
            if ext not in old_variants:
                diff.append({"op": "created", "variant": ext, "changes": {"title": [None, variant.title]}})
            elif fields := change_lists.changes(old_variants[ext], after):
                diff.append({"op": "updated", "variant": ext, "changes": fields})
        for ext, available in stock_before.items():
            if changed_products.get(variants[ext][1]) == "created":
                continue
            after_qty = variants[ext][0].quantity
            diff.append({"op": "stock", "variant": ext, "changes": {"available": [available, after_qty]}})
        self.counts.diff.extend(diff[: max(0, MAX_RECORDED_DIFF - len(self.counts.diff))])

    # -- after a full pass -----------------------------------------------------------------------------------

    def _delete_unseen(self) -> None:
        """Soft-delete what a full pass did not see (rows with order history must keep their ids)."""
        m = self.merchant_id
        if not self._seen_products and self.counts.failed_rows == 0:
            with self.db.session() as session:
                live = session.scalar(
                    select(ProductRow.id)
                    .where(ProductRow.merchant_id == m, ProductRow.status != DELETED)
                    .limit(1)
                )
            if live is not None:
                raise PermanentError(
                    "the store returned an empty catalog; refusing to delete every product (resync once fixed)",
                    code="empty_catalog",
                )
        with self._writes() as session:
            gone_products = [
                (pid, ext)
                for pid, ext in session.execute(
                    select(ProductRow.id, ProductRow.external_id).where(
                        ProductRow.merchant_id == m, ProductRow.status != DELETED
                    )
                )
                if ext not in self._seen_products
            ]
            gone_variants = [
                (vid, ext, pid)
                for vid, ext, pid in session.execute(
                    select(VariantRow.id, VariantRow.external_id, VariantRow.product_id).where(
                        VariantRow.merchant_id == m, VariantRow.status != DELETED
                    )
                )
                if ext not in self._seen_variants
            ]
            if not gone_products and not gone_variants:
                return
            now = datetime.now(UTC)
            gone_pids = {pid for pid, _ in gone_products}
            if gone_products:
                _bulk_update(
                    session,
                    _products,
                    [
                        {"id": pid, "status": DELETED, "content_hash": DELETED, "updated_at": now}
                        for pid, _ in gone_products
                    ],
                )
            if gone_variants:
                _bulk_update(
                    session,
                    _variants,
                    [
                        {"id": vid, "status": DELETED, "content_hash": DELETED, "updated_at": now}
                        for vid, _, _ in gone_variants
                    ],
                )
            self.counts.deleted += len(gone_variants)
            pruned = {pid for _, _, pid in gone_variants} - gone_pids
            product_exts = (
                dict(
                    session.execute(
                        select(ProductRow.id, ProductRow.external_id).where(ProductRow.id.in_(pruned))
                    ).all()
                )
                if pruned
                else {}
            )
            deleted_events = [
                outbox.DomainEvent(
                    event_types.PRODUCT_DELETED, m, {"product_id": pid, "external_id": ext}, now
                )
                for pid, ext in gone_products
            ] + [
                outbox.DomainEvent(
                    event_types.PRODUCT_UPDATED,
                    m,
                    {
                        "change": "variants_removed",
                        "product": {"id": pid, "external_id": product_exts[pid]},
                        "removed_variants": [ext for _, ext, p in gone_variants if p == pid],
                    },
                    now,
                )
                for pid in sorted(pruned)
            ]
            self.counts.events_emitted += outbox.publish(session, deleted_events)
            if self.dry_run:
                room = MAX_RECORDED_DIFF - len(self.counts.diff)
                self.counts.diff.extend({"op": "deleted", "product": ext} for _, ext in gone_products[:room])

    # -- run bookkeeping -----------------------------------------------------------------------------------

    def _touch(self, session: Session, *, final: bool = False) -> None:
        values: dict[str, Any] = {**self.counts.as_row(), "heartbeat_at": datetime.now(UTC)}
        if final:
            values["row_errors"] = self.counts.row_errors
            values["diff"] = self.counts.diff
        result = session.execute(
            update(SyncRun)
            .where(SyncRun.id == self.run_id, SyncRun.lease_token == self.lease_token)
            .values(**values)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise LeaseLostError(f"sync run {self.run_id} was taken over")
