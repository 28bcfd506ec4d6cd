"""Catalog sync through the real queue and worker, on each database backend."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.catalog import rows, syncs
from connector.catalog.synchronizer import CatalogSync, LeaseLostError
from connector.infra import outbox
from connector.infra.models import (
    EventPayload,
    InventoryLevel,
    Merchant,
    Product,
    Reservation,
    SyncRun,
    Variant,
)
from connector.infra.store_adapters import build_adapter
from connector.sandbox.feeds import write_feed
from tests.helpers import add_feed_merchant, event_counts, rewrite_feed, sync_now


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    return write_feed(tmp_path / "feed.csv", 300, variants_per_product=3)


def test_full_sync_stores_catalog_and_emits_events(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    run = sync_now(rt, merchant_id)

    assert run.status == "succeeded", run.error
    assert (run.rows_read, run.created, run.updated, run.unchanged, run.failed_rows) == (300, 300, 0, 0, 0)
    with rt.db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Product).where(Product.merchant_id == merchant_id))
            == 100
        )
        assert (
            s.scalar(select(func.count()).select_from(Variant).where(Variant.merchant_id == merchant_id))
            == 300
        )
        levels = s.scalar(select(func.count()).select_from(InventoryLevel))
        tracked = s.scalar(
            select(func.count()).select_from(Variant).where(Variant.inventory_tracked.is_(True))
        )
        assert levels == tracked > 0
        variant = s.scalars(select(Variant).order_by(Variant.id)).first()
        assert variant is not None and variant.price_minor > 0 and variant.currency
    counts = event_counts(rt, merchant_id)
    # New variants' stock travels in their product's event; inventory.updated is for later changes.
    assert counts == {outbox.PRODUCT_UPDATED: 100}
    assert run.events_emitted == 100
    with rt.db.session() as s:
        stored = s.scalars(select(EventPayload)).all()
    created = next(e for e in stored if e.data["product"]["external_id"] == "P-000001")
    assert created.data["change"] == "created"
    assert [v["external_id"] for v in created.data["variants"]] == ["SKU-000001", "SKU-000002", "SKU-000003"]
    assert all("sellable" in v and v["price_minor"] > 0 for v in created.data["variants"])


def test_second_sync_of_unchanged_feed_emits_nothing(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)
    before = event_counts(rt, merchant_id)

    run = sync_now(rt, merchant_id)

    assert run.status == "succeeded"
    assert (run.created, run.updated, run.unchanged, run.deleted, run.events_emitted) == (0, 0, 300, 0, 0)
    assert event_counts(rt, merchant_id) == before


def test_only_real_changes_emit_events(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)

    def change(i: int, row: dict[str, str]) -> dict[str, str]:
        if i == 4:  # product P-000002: price change
            amount, currency = row["price"].split()
            row["price"] = f"{float(amount) + 1:.2f} {currency}"
            row["sale_price"] = ""
        if i == 10:  # product P-000004: stock change only
            row["quantity"] = str(int(row["quantity"] or 0) + 7)
            row["availability"] = "in_stock"
        return row

    rewrite_feed(feed, change)
    with rt.db.session() as s:
        before = s.scalar(select(func.count()).select_from(EventPayload))

    run = sync_now(rt, merchant_id)

    assert (run.updated, run.unchanged) == (2, 298)
    with rt.db.session() as s:
        new = s.scalars(select(EventPayload).order_by(EventPayload.id).offset(before)).all()
    assert sorted(e.type for e in new) == [outbox.INVENTORY_UPDATED, outbox.PRODUCT_UPDATED]
    product_event = next(e for e in new if e.type == outbox.PRODUCT_UPDATED)
    assert product_event.data["product"]["external_id"] == "P-000002"
    stock_event = next(e for e in new if e.type == outbox.INVENTORY_UPDATED)
    assert stock_event.data["sellable"] == stock_event.data["previous_sellable"] + 7


def test_stock_a_webhook_set_during_a_pass_is_kept_and_levels_carry_the_pass_time(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    first = datetime.now(UTC)
    sync_now(rt, merchant_id)
    with rt.db.session() as s:
        levels = s.scalars(select(InventoryLevel).order_by(InventoryLevel.variant_id)).all()
        assert levels and all(lv.source_updated_at is not None for lv in levels)
        assert all(first - timedelta(seconds=1) <= lv.source_updated_at <= datetime.now(UTC) for lv in levels)
        newer, older = levels[0], levels[1]
        # A stock webhook stamped after the next pass begins, and one stamped well before it.
        newer.available, newer.source_updated_at = 900, datetime.now(UTC) + timedelta(hours=1)
        older.available, older.source_updated_at = 901, datetime.now(UTC) - timedelta(hours=1)
        kept, overwritten = newer.id, older.id

    rewrite_feed(feed, lambda i, row: {**row, "quantity": "5", "availability": "in_stock"})
    sync_now(rt, merchant_id)

    with rt.db.session() as s:
        assert s.get(InventoryLevel, kept).available == 900
        assert s.get(InventoryLevel, overwritten).available == 5


def test_sellable_subtracts_reservations_and_buffer(rt, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", 3, variants_per_product=1)
    merchant_id = add_feed_merchant(rt, feed, buffer=2)
    sync_now(rt, merchant_id)
    with rt.db.session() as s:
        variant = s.scalars(select(Variant).where(Variant.external_id == "SKU-000001")).one()
        s.add(
            Reservation(
                id="res_1", merchant_id=merchant_id, variant_id=variant.id, quantity=3, state="active"
            )
        )
        s.add(
            Reservation(
                id="res_2", merchant_id=merchant_id, variant_id=variant.id, quantity=5, state="released"
            )
        )
    rewrite_feed(
        feed, lambda i, row: {**row, "quantity": "20", "availability": "in_stock"} if i == 0 else row
    )

    sync_now(rt, merchant_id)

    with rt.db.session() as s:
        event = s.scalars(
            select(EventPayload)
            .where(EventPayload.type == outbox.INVENTORY_UPDATED)
            .order_by(EventPayload.id.desc())
        ).first()
    assert event is not None
    assert event.data["available"] == 20
    assert event.data["sellable"] == 20 - 3 - 2


def test_rows_missing_from_a_full_sync_are_deleted(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)
    # Drop product P-000001 (rows 0-2) entirely and one variant of P-000002 (row 3).
    rewrite_feed(feed, lambda i, row: None if i <= 3 else row)

    run = sync_now(rt, merchant_id)

    assert run.deleted == 4
    with rt.db.session() as s:
        gone = s.scalars(select(Product).where(Product.external_id == "P-000001")).one()
        assert gone.status == "deleted"
        assert s.scalars(select(Variant).where(Variant.external_id == "SKU-000004")).one().status == "deleted"
        deleted = s.scalars(select(EventPayload).where(EventPayload.type == outbox.PRODUCT_DELETED)).all()
    assert [e.data["external_id"] for e in deleted] == ["P-000001"]
    # Coming back undeletes it.
    write_feed(feed, 300, variants_per_product=3)
    run = sync_now(rt, merchant_id)
    with rt.db.session() as s:
        assert s.scalars(select(Product).where(Product.external_id == "P-000001")).one().status == "active"


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_sync(rt, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", 50, variants_per_product=1, bad_rows=(4, 10))
    merchant_id = add_feed_merchant(rt, feed)

    run = sync_now(rt, merchant_id)

    assert run.status == "succeeded"
    assert run.failed_rows == 2
    assert run.created == 48
    assert [e["line"] for e in run.row_errors] == [6, 12]
    assert all(e["error"] for e in run.row_errors)


def test_a_row_that_turns_bad_keeps_its_variant(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)
    rewrite_feed(feed, lambda i, row: {**row, "price": "twelve dollars"} if i == 0 else row)

    run = sync_now(rt, merchant_id)

    assert (run.failed_rows, run.deleted) == (1, 0)
    with rt.db.session() as s:
        kept = s.scalars(select(Variant).where(Variant.external_id == "SKU-000001")).one()
        assert kept.status == "active"
        assert s.scalars(select(Product).where(Product.external_id == "P-000001")).one().status == "active"


def test_dry_run_writes_nothing_and_reports_the_diff(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)

    run = sync_now(rt, merchant_id, dry_run=True)

    assert run.status == "succeeded" and run.dry_run
    assert run.created == 300
    assert {d["op"] for d in run.diff} >= {"created"}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 0
        assert s.scalar(select(func.count()).select_from(EventPayload)) == 0
        assert s.get(Merchant, merchant_id).catalog_watermark is None


def test_empty_feed_does_not_wipe_the_catalog(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)
    rewrite_feed(feed, lambda i, row: None)

    run = sync_now(rt, merchant_id)

    assert run.status == "failed"
    assert "empty_catalog" in (run.error or "")
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Product).where(Product.status == "deleted")) == 0


def test_a_run_taken_over_by_another_worker_stops_writing(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    with rt.db.session() as s:
        run = SyncRun(merchant_id=merchant_id, kind="catalog", status="queued")
        s.add(run)
        s.flush()
        run_id = run.id
    first = syncs.claim(rt, run_id)
    assert first is not None
    assert syncs.claim(rt, run_id) is None  # live lease: nobody else may take it
    with rt.db.session() as s:
        s.get(SyncRun, run_id).heartbeat_at = datetime.now(UTC) - timedelta(seconds=60)
    second = syncs.claim(rt, run_id)  # stale heartbeat: taken over
    assert second is not None and second != first

    with rt.db.session() as s:
        merchant = s.get(Merchant, merchant_id)
    sync = CatalogSync(
        rt.db,
        build_adapter(merchant, rt.secrets, rt.settings),
        merchant_id=merchant_id,
        run_id=run_id,
        lease_token=first,
        batch_size=50,
    )
    with pytest.raises(LeaseLostError):
        sync.run()
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 0  # the first batch was rolled back


def test_a_pass_that_wrote_every_live_row_reads_none_back(rt, feed, monkeypatch):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)
    rewrite_feed(feed, lambda i, row: None if i <= 2 else row)  # P-000001 goes
    assert sync_now(rt, merchant_id).deleted == 3

    def unseen(*args: object) -> None:
        raise AssertionError("the stored rows were read back")

    monkeypatch.setattr(rows, "unseen", unseen)
    # Every live row is in the feed (the deleted ones do not count): nothing to look for.
    run = sync_now(rt, merchant_id)
    assert (run.status, run.unchanged, run.deleted, run.events_emitted) == ("succeeded", 297, 0, 0)
    # A live row the feed lacks makes the counts differ, so the rows are read back and it is found.
    monkeypatch.undo()
    rewrite_feed(feed, lambda i, row: None if row["id"] == "SKU-000004" else row)
    run = sync_now(rt, merchant_id)
    assert run.deleted == 1
    with rt.db.session() as s:
        assert s.scalars(select(Variant).where(Variant.external_id == "SKU-000004")).one().status == "deleted"


def test_events_of_a_batch_have_distinct_well_formed_ids(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    sync_now(rt, merchant_id)
    with rt.db.session() as s:
        ids = s.scalars(select(EventPayload.id).where(EventPayload.merchant_id == merchant_id)).all()
    assert len(ids) == 100 and len(set(ids)) == 100
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", event_id) for event_id in ids)
