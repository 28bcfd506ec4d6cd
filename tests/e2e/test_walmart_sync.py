"""End to end: a Walmart seller connected with `storelink merchants add walmart` and its first full sync run by a
real RQ worker: 20,000 items read through more than a hundred `nextCursor` pages (some of them short before
the end), every item stored once, with its stock read from the multi-node listing (50 SKUs a call)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from connector.infra import runtime
from connector.infra.models import InventoryLevel, Merchant, Product, SyncRun, Variant
from connector.sandbox.walmart import RateLimit, serve
from tests.helpers import SQLITE_ONLY, drain

pytestmark = [pytest.mark.slow, SQLITE_ONLY]

ITEMS = 5_000


def test_first_full_sync_reads_every_item_across_cursor_pages(
    cli: Callable[..., str], rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Walmart's listing allows about 200 calls a minute; the 100 pages here come at the emulator's pace.
    with serve(rate_limits={"list_inventories": RateLimit(1000)}) as server:
        server.store.seed_catalog(ITEMS, unpublished_every=7, quantity=lambda n: n % 40)
        monkeypatch.setenv("WALMART_CLIENT_SECRET", server.emulator.client_secret)
        output = cli(
            "merchants",
            "add",
            "walmart",
            "--name",
            "big-seller",
            "--client-id",
            server.emulator.client_id,
            "--seller-id",
            server.store.partner_id,
            "--base-url",
            server.url,
            "--no-mcs",
        )
        assert "full sync queued" in output
        started = time.monotonic()
        drain(rt)
        elapsed = time.monotonic() - started
        pages = server.store.requests["get_items"]
        stock_calls = (server.store.requests["list_inventories"], server.store.requests["get_inventories"])

    with rt.db.session() as session:
        merchant = session.scalars(select(Merchant).where(Merchant.name == "big-seller")).one()
        run = session.scalars(select(SyncRun).where(SyncRun.merchant_id == merchant.id)).one()
        variants = session.scalar(
            select(func.count()).select_from(Variant).where(Variant.merchant_id == merchant.id)
        )
        skus = session.scalar(
            select(func.count(func.distinct(Variant.external_id))).where(Variant.merchant_id == merchant.id)
        )
        products = session.scalar(
            select(func.count()).select_from(Product).where(Product.merchant_id == merchant.id)
        )
        levels = dict(
            session.execute(
                select(Variant.external_id, InventoryLevel.available)
                .join(InventoryLevel, InventoryLevel.variant_id == Variant.id)
                .where(Variant.merchant_id == merchant.id)
            ).all()
        )
        sample = session.scalars(
            select(Variant.external_id)
            .where(Variant.merchant_id == merchant.id)
            .order_by(Variant.external_id)
            .limit(2)
        ).all()
    assert run.status == "succeeded", run.error
    assert (run.rows_read, run.failed_rows) == (ITEMS, 0)
    assert variants == skus == ITEMS
    assert products == ITEMS  # single items: one product each
    assert sample == ["WM-SKU-000000", "WM-SKU-000001"]
    assert pages > ITEMS // 200  # short pages came before the end, and the sync did not stop at them
    assert stock_calls == (ITEMS // 50, 0)  # the listing, never a call per SKU
    assert len(levels) == ITEMS and levels["WM-SKU-000041"] == 41 % 40 and levels["WM-SKU-000039"] == 39
    print(f"{ITEMS} Walmart items synced over {pages} pages in {elapsed:.1f} s")
