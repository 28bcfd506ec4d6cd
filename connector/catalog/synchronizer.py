"""Catalog synchronizer: streams a store's catalog into products, variants and levels, diffing by content hash.

The flow follows the binder / mapper / synchronizer split: the adapter maps store records to domain types,
the (merchant, external id) unique keys bind them to rows (`connector.catalog.rows`, the binder), and this
module decides what changed and which events say so. Work is done in batches of `batch_size` variants, one
transaction each, so memory stays flat whatever the catalog size; only the set of external ids seen in a full
pass is kept, to find what disappeared.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from connector.catalog import change_lists, groups, rows
from connector.catalog.levels import sellable
from connector.catalog.statistics import Analyzer
from connector.domain import event_types
from connector.domain.catalog import STATUS_TEXT, Product, Variant
from connector.domain.errors import PermanentError
from connector.domain.ports import StoreAdapter
from connector.infra import bulk_insert, outbox
from connector.infra.db import Database
from connector.infra.models import Merchant, SyncRun
from connector.infra.models import Product as ProductRow
from connector.infra.models import Variant as VariantRow

logger = logging.getLogger(__name__)

INCREMENTAL_OVERLAP = timedelta(minutes=5)
MAX_RECORDED_ERRORS = 1000
MAX_RECORDED_DIFF = 1000
SYNC_RUNS: Table = SyncRun.__table__  # type: ignore[assignment]


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


@dataclass(slots=True)
class _Batch:
    """One batch of a pass: its products and variants, their stored rows, and what the batch changed."""

    now: datetime
    products: dict[str, Product]
    variants: dict[str, tuple[Variant, str]]
    """external id -> (variant, its product's external id)"""
    stored: rows.StoredRows
    p_hash: dict[str, str]
    v_hash: dict[str, str]
    product_ids: dict[str, int] = field(default_factory=dict)
    variant_ids: dict[str, int] = field(default_factory=dict)
    changed_products: dict[str, str] = field(default_factory=dict)
    """external id -> "created" | "updated", in the order the events go out"""
    retitled: set[str] = field(default_factory=set)
    """products whose own fields changed: every row of theirs did"""
    changed_variants: set[str] = field(default_factory=set)
    changed_stock: set[str] = field(default_factory=set)
    stock: dict[str, int | None] = field(default_factory=dict)
    """external id -> sellable stock after the batch (None: not tracked)"""


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
        self._written = (0, 0)
        """How many products and variants the batches wrote (all of them live afterwards)."""
        self._analyzer = Analyzer(db)
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
        self._written = (len(self._seen_products), len(self._seen_variants))
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
            self.counts.events_emitted += self._apply(session, rows.merge(batch))
        self._analyzer.created(self.counts.created)

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
        variants = {v.external_id: (v, p.external_id) for p in products.values() for v in p.variants}
        self._seen_products.update(products)
        self._seen_variants.update(variants)
        stored = rows.read_stored(session, self.merchant_id, self.location, list(products), list(variants))
        batch = _Batch(
            datetime.now(UTC),
            products,
            variants,
            stored,
            p_hash={ext: p.content_hash() for ext, p in products.items()},
            v_hash={ext: v.content_hash() for ext, (v, _) in variants.items()},
        )
        stored_fields = (
            self._before(session, stored.products, stored.variants, batch.p_hash, batch.v_hash)
            if self.dry_run
            else ({}, {})
        )
        self._write_products(session, batch)
        self._write_groups(session, batch)
        self._write_variants(session, batch)
        inventory_events = self._write_levels(session, batch)
        self._count_rows(batch)
        product_events = [
            outbox.DomainEvent(
                event_types.PRODUCT_UPDATED,
                self.merchant_id,
                self._product_payload(
                    products[ext], batch.product_ids[ext], batch.variant_ids, batch.stock, change
                ),
                batch.now,
            )
            for ext, change in batch.changed_products.items()
        ]
        if self.dry_run:
            stock_before = {
                ext: level[1] if (level := stored.levels.get(batch.variant_ids[ext])) else None
                for ext in batch.changed_stock
            }
            self._record_diff(
                products,
                batch.changed_products,
                batch.changed_variants,
                variants,
                stored_fields,
                stock_before,
            )
        return outbox.publish(session, product_events + inventory_events)

    def _write_products(self, session: Session, batch: _Batch) -> None:
        """Products: insert new, update changed."""
        m, now, stored = self.merchant_id, batch.now, batch.stored.products
        new_p = [ext for ext in batch.products if ext not in stored]
        upd_p = []
        for ext, (pid, h) in stored.items():
            if batch.p_hash[ext] != h:
                values = rows.product_values(batch.products[ext], batch.p_hash[ext])
                upd_p.append({"id": pid, "updated_at": now, **values})
                batch.changed_products[ext] = "updated"
        batch.retitled = set(batch.changed_products)
        batch.product_ids = {ext: row[0] for ext, row in stored.items()}
        if new_p:
            new_rows = [
                {
                    "merchant_id": m,
                    "external_id": ext,
                    "created_at": now,
                    "updated_at": now,
                    **rows.product_values(batch.products[ext], batch.p_hash[ext]),
                }
                for ext in new_p
            ]
            for ext, pid in rows.bulk_insert_rows(session, rows.PRODUCTS, m, new_rows).items():
                batch.product_ids[ext] = pid
                batch.changed_products[ext] = "created"
        if upd_p:
            rows.bulk_update(session, rows.PRODUCTS, upd_p)

    def _write_groups(self, session: Session, batch: _Batch) -> None:
        """Tags and collections of the products whose own fields changed (new ones: only those with some)."""
        stored = batch.stored.products
        regrouped = {
            batch.product_ids[ext]: batch.products[ext]
            for ext in batch.changed_products
            if ext in stored or batch.products[ext].tags or batch.products[ext].collections
        }
        if regrouped:
            fresh = {batch.product_ids[ext] for ext in batch.changed_products if ext not in stored}
            groups.write(session, self.merchant_id, regrouped, fresh, batch.now)

    def _write_variants(self, session: Session, batch: _Batch) -> None:
        """Variants: insert new, update changed (a variant may move to another product)."""
        m, now, stored = self.merchant_id, batch.now, batch.stored.variants
        new_v = []
        upd_v = []
        for ext, (variant, product_ext) in batch.variants.items():
            pid = batch.product_ids[product_ext]
            if ext not in stored:
                new_v.append(
                    {
                        "merchant_id": m,
                        "product_id": pid,
                        "external_id": ext,
                        "created_at": now,
                        "updated_at": now,
                        **rows.variant_values(variant, batch.v_hash[ext]),
                    }
                )
                continue
            vid, stored_pid, h = stored[ext]
            if batch.v_hash[ext] != h or stored_pid != pid:
                values = rows.variant_values(variant, batch.v_hash[ext])
                upd_v.append({"id": vid, "product_id": pid, "updated_at": now, **values})
                batch.changed_variants.add(ext)
                batch.changed_products.setdefault(product_ext, "updated")
        batch.variant_ids = {ext: row[0] for ext, row in stored.items()}
        if new_v:
            for ext, vid in rows.bulk_insert_rows(session, rows.VARIANTS, m, new_v).items():
                batch.variant_ids[ext] = vid
                batch.changed_variants.add(ext)
                batch.changed_products.setdefault(batch.variants[ext][1], "updated")
        if upd_v:
            rows.bulk_update(session, rows.VARIANTS, upd_v)

    def _write_levels(self, session: Session, batch: _Batch) -> list[outbox.DomainEvent]:
        """Inventory levels at the merchant's location; returns the `inventory.updated` events.

        `inventory.updated` reports a change of sellable stock the platform already knew; a new variant's
        stock travels in its product's `product.updated`."""
        m, now = self.merchant_id, batch.now
        new_levels = []
        upd_levels = []
        inventory_events = []
        for ext, (variant, product_ext) in batch.variants.items():
            if variant.quantity is None:
                batch.stock[ext] = None
                continue
            vid = batch.variant_ids[ext]
            held = batch.stored.reserved.get(vid, 0)
            after = batch.stock[ext] = sellable(variant.quantity, held, self.buffer)
            level = batch.stored.levels.get(vid)
            if level is not None and (level[1] == variant.quantity or rows.newer(level[2], self.as_of)):
                if level[1] != variant.quantity:  # a stock webhook newer than this pass's figures stands
                    batch.stock[ext] = sellable(level[1], held, self.buffer)
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
            batch.changed_stock.add(ext)
            if before != after and ext in batch.stored.variants:
                payload = {
                    "variant_id": vid,
                    "external_id": ext,
                    "product_id": batch.product_ids[product_ext],
                    "location": self.location,
                    "available": variant.quantity,
                    "sellable": after,
                    "previous_sellable": before,
                }
                inventory_events.append(outbox.DomainEvent(event_types.INVENTORY_UPDATED, m, payload, now))
        if new_levels:
            bulk_insert.insert_many(session.connection(), rows.LEVELS, new_levels)
        if upd_levels:
            session.connection().execute(rows.LEVEL_UPDATE, upd_levels)
        return inventory_events

    def _count_rows(self, batch: _Batch) -> None:
        """Counts per variant row."""
        for ext, (_, product_ext) in batch.variants.items():
            if ext not in batch.stored.variants:
                self.counts.created += 1
            elif ext in batch.changed_variants or ext in batch.changed_stock or product_ext in batch.retitled:
                self.counts.updated += 1
            else:
                self.counts.unchanged += 1
        self.counts.rows_read += len(batch.variants)

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
                "status": STATUS_TEXT[p.status],
                "url": p.url,
                "tags": list(p.tags),
                "collections": [
                    {"external_id": c.external_id, "handle": c.handle, "title": c.title}
                    for c in p.collections
                ],
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
                live = rows.live_product(session, m)
            if live is not None:
                raise PermanentError(
                    "the store returned an empty catalog; refusing to delete every product (resync once fixed)",
                    code="empty_catalog",
                )
        with self._writes() as session:
            # Every product and variant a pass wrote is live: when that is all the merchant has live, nothing
            # went unseen, and the stored rows need not be read back.
            if not self.dry_run and rows.live_counts(session, m) == self._written:
                return
            gone_products, gone_variants = rows.unseen(session, m, self._seen_products, self._seen_variants)
            if not gone_products and not gone_variants:
                return
            now = datetime.now(UTC)
            if gone_products:
                rows.soft_delete(session, rows.PRODUCTS, (pid for pid, _ in gone_products), now)
            if gone_variants:
                rows.soft_delete(session, rows.VARIANTS, (vid for vid, _, _ in gone_variants), now)
            self.counts.deleted += len(gone_variants)
            events = self._deletion_events(session, gone_products, gone_variants, now)
            self.counts.events_emitted += outbox.publish(session, events)
            if self.dry_run:
                room = MAX_RECORDED_DIFF - len(self.counts.diff)
                self.counts.diff.extend({"op": "deleted", "product": ext} for _, ext in gone_products[:room])

    def _deletion_events(
        self,
        session: Session,
        gone_products: list[tuple[int, str]],
        gone_variants: list[tuple[int, str, int]],
        now: datetime,
    ) -> list[outbox.DomainEvent]:
        """`product.deleted` for each product gone, `product.updated` (variants_removed) for each product that
        stays but lost variants."""
        m = self.merchant_id
        pruned = {pid for _, _, pid in gone_variants} - {pid for pid, _ in gone_products}
        product_exts = rows.external_ids(session, pruned)
        return [
            outbox.DomainEvent(event_types.PRODUCT_DELETED, m, {"product_id": pid, "external_id": ext}, now)
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

    # -- run bookkeeping -----------------------------------------------------------------------------------

    def _touch(self, session: Session, *, final: bool = False) -> None:
        values: dict[str, Any] = {**self.counts.as_row(), "heartbeat_at": datetime.now(UTC)}
        if final:
            values["row_errors"] = self.counts.row_errors
            values["diff"] = self.counts.diff
        runs = SYNC_RUNS.c
        result = session.connection().execute(  # Core: no ORM session bookkeeping, once per batch
            update(SYNC_RUNS)
            .where(runs.id == self.run_id, runs.lease_token == self.lease_token)
            .values(**values)
        )
        if result.rowcount == 0:
            raise LeaseLostError(f"sync run {self.run_id} was taken over")
