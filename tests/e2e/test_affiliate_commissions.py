"""End to end: a creator's commission from program to payout through `storelink up` (gunicorn, workers and the
scheduler) against the Shopify emulator: a program and a link over HTTP, a visitor's click through the link's
public redirect, an order carrying the click id pushed to the store with the creator's tag and custom attributes, a partial refund the emulator sends as a
signed webhook turned into a reversal, approval once the hold is over, a payout, the CSV export, and every commission
event delivered, signed, to the platform receiver."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from config.settings import Settings
from connector.affiliates.amounts import commission
from connector.infra.models import AffiliateClick, CommissionEntry, Merchant, Order, Variant
from connector.sandbox import platform as platform_receiver
from connector.sandbox.shopify import Server, serve
from tests.helpers import ON_POSTGRESQL, Up, wait_for

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

SHOP = "storelink-demo.myshopify.com"
HOLD_SECONDS = 3
RATE = 1250
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@pytest.fixture
def shopify() -> Iterator[Server]:
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(2, 1, available=(50, 50))
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
        WEBHOOK_ALLOW_PRIVATE_URLS="true",
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _install(up: Up) -> int:
    install = requests.get(
        f"{up.url}/shopify/install", params={"shop": SHOP}, allow_redirects=False, timeout=10
    )
    grant = requests.get(install.headers["Location"], allow_redirects=False, timeout=10)
    done = requests.get(grant.headers["Location"], allow_redirects=False, timeout=30)
    assert done.status_code == 201, done.text
    run = up.wait_run(done.json()["sync_run_id"], timeout=120)
    assert run.status == "succeeded", run.error
    with up.db.session() as s:
        merchant_id: int = s.scalars(select(Merchant.id)).one()
    return merchant_id


def _call(
    up: Up, key: str, method: str, path: str, body: dict[str, Any], **headers: str
) -> requests.Response:
    return requests.request(
        method,
        f"{up.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=15,
    )


def _entries(up: Up) -> list[CommissionEntry]:
    with up.db.session() as s:
        found = list(s.scalars(select(CommissionEntry).order_by(CommissionEntry.id)))
        s.expunge_all()
        return found


def test_a_creators_commission_from_link_to_payout(up: Up, shopify: Server) -> None:
    merchant_id = _install(up)
    key = re.search(r"API key \(shown once\): (\S+)", up.cli("clients", "add", "platform").stdout).group(1)  # type: ignore[union-attr]
    up.cli("merchants", "assign", str(merchant_id), "--client", "platform")
    with platform_receiver.serve() as platform:
        endpoint = _call(
            up, key, "POST", "/v1/webhook-endpoints", {"url": platform.url, "event_types": ["commission.*"]}
        )
        assert endpoint.status_code == 201, endpoint.text
        platform.receiver.set_secrets([endpoint.json()["secret"]])
        _flow(up, key, shopify, merchant_id, platform)


def _flow(up: Up, key: str, shopify: Server, merchant_id: int, platform: Any) -> None:
    with up.db.session() as s:
        variant = s.scalars(select(Variant).order_by(Variant.id)).first()
        assert variant is not None
        variant_id, product_id, price = variant.id, variant.product_id, variant.price_minor
    program = _call(
        up,
        key,
        "POST",
        "/v1/affiliate-programs",
        {
            "merchant_id": merchant_id,
            "kind": "open",
            "name": "All",
            "default_rate_bps": RATE,
            "hold_seconds": HOLD_SECONDS,
        },
    )
    assert program.status_code == 201, program.text
    link = _call(
        up, key, "POST", "/v1/affiliate-links", {"creator_ref": "creator-1", "product_id": product_id}
    )
    assert link.status_code == 201, link.text
    code = link.json()["code"]
    visit = requests.get(
        f"{up.url}/l/{code}", headers={"User-Agent": BROWSER}, allow_redirects=False, timeout=15
    )
    assert visit.status_code == 302, visit.text
    (click_id,) = parse_qs(urlsplit(visit.headers["Location"]).query)["sl_click"]
    order = _call(
        up,
        key,
        "POST",
        "/v1/orders",
        {
            "lines": [{"variant_id": variant_id, "quantity": 2, "unit_price_minor": price}],
            "currency": "USD",
            "attribution": {"click_ids": [click_id]},
        },
        **{"Idempotency-Key": "order-1"},
    )
    assert order.status_code == 201, order.text
    assert order.json()["attribution"] == {"creator_ref": "creator-1", "via": "click"}

    pushed = wait_for(lambda: list(shopify.store.orders.values()), 60, "the order in the store")
    (store_order,) = pushed  # type: ignore[misc]
    assert "creator:creator-1" in store_order.tags
    assert {"key": "storelink_link_code", "value": code} in store_order.custom_attributes
    assert {"key": "storelink_click_id", "value": click_id} in store_order.custom_attributes
    wait_for(lambda: len(_entries(up)) == 1, 60, "the accrual")

    line_id = store_order.line_items[0].legacy_resource_id
    shopify.store.refund_order(store_order.legacy_resource_id, lines={line_id: 1})  # sends refunds/create
    wait_for(lambda: len(_entries(up)) == 2, 60, "the reversal from the store's refund webhook")
    accrual, reversal = _entries(up)
    assert reversal.kind == "reversal" and reversal.refunded_quantity == 1
    assert accrual.amount_minor + reversal.amount_minor == commission(price, RATE)  # one unit of two kept

    wait_for(lambda: {e.state for e in _entries(up)} == {"approved"}, 60, "approval after the hold")
    payout = _call(
        up,
        key,
        "POST",
        "/v1/payouts",
        {
            "platform_payout_id": "po-1",
            "creator_ref": "creator-1",
            "currency": "USD",
            "approved_up_to": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
        },
    )
    assert payout.status_code == 201, payout.text
    assert payout.json()["total_minor"] == accrual.amount_minor + reversal.amount_minor
    assert {e.state for e in _entries(up)} == {"paid"}

    wanted = {"commission.created", "commission.reversed", "commission.approved", "commission.paid"}
    wait_for(lambda: wanted <= {r.type for r in platform.receiver.received()}, 60, "every commission event")
    received = platform.receiver.received()
    assert all(request.verified for request in platform.receiver.requests())
    assert sum(1 for r in received if r.type == "commission.approved") == 2
    with up.db.session() as s:
        assert s.scalar(select(Order.attributed_via)) == "click"
    # The scheduler's flush writes the buffered click with its visitor hash (the order's lookup wrote it first).
    wait_for(lambda: _click_visitor(up, click_id) is not None, 60, "the click flushed with its visitor")

    export = requests.get(
        f"{up.url}/v1/commissions/export.csv",
        params={"creator_ref": "creator-1"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )
    assert export.status_code == 200 and export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["kind"], r["state"], int(r["amount_minor"])) for r in rows] == [
        ("accrual", "paid", accrual.amount_minor),
        ("reversal", "paid", reversal.amount_minor),
    ]


def _click_visitor(up: Up, click_id: str) -> str | None:
    with up.db.session() as s:
        return s.scalar(select(AffiliateClick.visitor_hash).where(AffiliateClick.click_id == click_id))
