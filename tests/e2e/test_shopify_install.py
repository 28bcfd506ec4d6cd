"""End to end: a Shopify shop of 5,000 products installed through `storelink up` over HTTP, its first full
sync a bulk export read by a real worker process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra.models import Merchant, Product, SyncRun, Variant
from connector.sandbox.shopify import Server, serve
from tests.helpers import ON_POSTGRESQL, Up

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

SHOP = "storelink-demo.myshopify.com"
PRODUCTS, VARIANTS_EACH = 5_000, 3


@pytest.fixture
def shopify() -> Iterator[Server]:
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(PRODUCTS, VARIANTS_EACH)
        yield server


@pytest.fixture
def up(settings: Settings, redis, shopify: Server, tmp_path: Path) -> Iterator[Up]:
    app = shopify.emulator.client
    server = Up(
        settings,
        tmp_path,
        workers=1,
        SHOPIFY_API_KEY=app.client_id,
        SHOPIFY_API_SECRET=app.client_secret,
        SHOPIFY_ADMIN_BASE_URL=shopify.url,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _count(up: Up, model: type) -> int:
    with up.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_an_installed_shop_is_synced_in_full_by_a_worker(up, shopify):
    started = time.monotonic()
    install = requests.get(
        f"{up.url}/shopify/install", params={"shop": SHOP}, allow_redirects=False, timeout=10
    )
    assert install.status_code == 302, install.text
    grant = requests.get(install.headers["Location"], allow_redirects=False, timeout=10)
    assert grant.status_code == 302, grant.text
    callback = grant.headers["Location"]
    assert urlsplit(callback).path == "/shopify/callback" and callback.startswith(up.url)

    done = requests.get(callback, allow_redirects=False, timeout=30)

    assert done.status_code == 201, done.text
    body = done.json()
    assert len(shopify.store.subscriptions) == len(body["webhook_topics"]) > 0
    run = up.wait_run(body["sync_run_id"], timeout=120)
    assert run.status == "succeeded", run.error
    assert (run.rows_read, run.created, run.failed_rows) == (PRODUCTS * VARIANTS_EACH,) * 2 + (0,)
    assert _count(up, Product) == PRODUCTS
    assert _count(up, Variant) == PRODUCTS * VARIANTS_EACH
    with up.db.session() as s:
        merchant = s.scalars(select(Merchant)).one()
        assert (merchant.store_ref, merchant.status) == (SHOP, "installed")
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 1
    assert shopify.store.bulk_operations  # read through a bulk operation, not pages
    assert time.monotonic() - started < 60
