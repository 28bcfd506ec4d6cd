"""End to end: a Walmart seller connected with `storelink merchants add walmart` and its first full sync run by a
real RQ worker: 20,000 items read through more than a hundred `nextCursor` pages (some of them short before
the end), every item stored once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from connector import runtime
from connector.models import Merchant, Product, SyncRun, Variant
from connector.sandbox.walmart import serve
from tests.helpers import drain

pytestmark = pytest.mark.slow

ITEMS = 20_000


def test_first_full_sync_reads_every_item_across_cursor_pages(
    cli: Callable[..., str], rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve() as server:
        server.store.seed_catalog(ITEMS, unpublished_every=7)
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
            "--set",
            "catalog_stock=false",  # stock comes from notifications and the reconcile, not 20,000 reads
        )
        assert "full sync queued" in output
        started = time.monotonic()
        drain(rt)
        elapsed = time.monotonic() - started
        pages = server.store.requests["get_items"]

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
    print(f"{ITEMS} Walmart items synced over {pages} pages in {elapsed:.1f} s")
