"""The ledger the write path keeps, read back: a sale through a creator's link against the Shopify emulator,
approval after the hold, a payout, a refund after it; then the creator's earnings, the merchant's commissions,
one entry's history, the CSV export and `storelink commissions show` all tell the same story."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.affiliates import approval
from connector.infra import runtime
from connector.sandbox.shopify.app import serve
from tests.helpers import drain
from tests.integration.affiliate_support import (
    create_program,
    make_link,
    place_order,
    product_of,
    shopify_shop,
)
from tests.integration.checkout_support import Shop

HOLD = 3600


@pytest.fixture
def shop(rt: runtime.Runtime) -> Iterator[Shop]:
    with serve() as store:
        store.store.seed_catalog(2, 1, available=(100, 100))
        with shopify_shop(rt, store) as made:
            yield made


def _get(shop: Shop, path: str, **params: Any) -> Any:
    response = shop.http().get(path, query_string=params, headers=shop.auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_the_ledger_of_a_sale_a_payout_and_a_late_refund_reads_back_whole(
    rt: runtime.Runtime, shop: Shop, cli: Callable[..., str]
) -> None:
    create_program(shop, default_rate_bps=1000, hold_seconds=HOLD)
    first, second = shop.variants
    link = make_link(shop, "creator-1", product_of(rt, first), status=None)
    order = place_order(shop, {first: 2, second: 1}, link_code=link["code"])
    drain(rt)
    after_hold = datetime.now(UTC) + timedelta(seconds=HOLD + 60)
    assert approval.approve_due(rt, after_hold) == 2
    payout = {"platform_payout_id": "po-1", "creator_ref": "creator-1", "currency": "USD"}
    paid = shop.http().post(
        "/v1/payouts", json=payout | {"approved_up_to": after_hold.isoformat()}, headers=shop.auth
    )
    assert paid.status_code == 201, paid.get_json()
    refund = {"refund_id": "late", "lines": [{"variant_id": first, "quantity": 1}]}
    assert (
        shop.http().post(f"/v1/orders/{order['id']}/refunds", json=refund, headers=shop.auth).status_code
        == 201
    )

    listed = _get(shop, "/v1/commissions", creator_ref="creator-1")
    kinds = sorted((entry["kind"], entry["state"]) for entry in listed["data"])
    assert kinds == [("accrual", "paid"), ("accrual", "paid"), ("reversal", "pending")]
    (reversal,) = [entry for entry in listed["data"] if entry["kind"] == "reversal"]
    assert reversal["amount_minor"] < 0 and reversal["order_id"] == order["id"]
    paid_total = paid.get_json()["total_minor"]
    (total,) = listed["totals"]
    assert (total["paid_minor"], total["balance_minor"]) == (paid_total, reversal["amount_minor"])

    earnings = _get(shop, "/v1/creators/creator-1/earnings")
    (usd,) = earnings["currencies"]
    assert (usd["paid_minor"], usd["pending_minor"], usd["balance_minor"]) == (
        paid_total,
        reversal["amount_minor"],
        reversal["amount_minor"],
    )  # the refund after payout is carried into the next balance
    links = _get(shop, "/v1/creators/creator-1/affiliate-links")
    assert [item["code"] for item in links["data"]] == [link["code"]]

    detail = _get(shop, f"/v1/commissions/{reversal['reverses']}")
    assert detail["reversed_by"] == [reversal["id"]] and detail["link"]["code"] == link["code"]
    steps = [(step["from_state"], step["to_state"], step["payout_id"]) for step in detail["history"]]
    assert steps == [(None, "pending", None), ("pending", "approved", None), ("approved", "paid", "po-1")]
    assert detail["entry"]["payout_id"] == "po-1" and detail["order"]["id"] == order["id"]

    response = shop.http().get("/v1/commissions/export.csv", headers=shop.auth)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(row["entry_id"] for row in rows) == sorted(entry["id"] for entry in listed["data"])
    assert sum(int(row["amount_minor"]) for row in rows) == paid_total + reversal["amount_minor"]
    assert rows[-1]["entry_id"] == reversal["id"]  # made last

    shown = json.loads(cli("commissions", "show", reversal["id"], "--json"))
    assert shown["entry"]["reverses"] == detail["entry"]["id"]
    assert [step["to_state"] for step in shown["history"]] == ["pending"]
