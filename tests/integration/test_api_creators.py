"""A creator's links, clicks and earnings through the Platform API, scoped to the calling client's merchants."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from connector.infra import runtime
from tests.helpers import ApiClient, assert_problem, make_client
from tests.integration.affiliate_support import create_program, make_link, product_of
from tests.integration.checkout_support import make_shop
from tests.integration.ledger_seed import (
    NOW,
    add_clicks,
    add_entry,
    add_link,
    add_order,
    add_payout,
    add_shop,
)


def _get(client: FlaskClient, api: ApiClient, path: str, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=api.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_creators_links_carry_their_click_counts_and_only_the_clients_merchants(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    shop = add_shop(rt, api_client.id)
    other_client = make_client(rt, "platform-b")
    elsewhere = add_shop(rt, other_client.id)
    first, _ = add_link(rt, shop, "creator-1")
    second_product = add_shop(rt, api_client.id)
    second, second_code = add_link(rt, second_product, "creator-1")
    add_link(rt, shop, "creator-2")
    hidden, _ = add_link(rt, elsewhere, "creator-1")
    add_clicks(rt, first, "click", 3)
    add_clicks(rt, first, "view", 2)
    add_clicks(rt, second, "tap", 1)
    add_clicks(rt, hidden, "click", 5)

    body = _get(client, api_client, "/v1/creators/creator-1/affiliate-links")
    assert [link["id"] for link in body["data"]] == [
        second,
        first,
    ]  # newest first, the other client's left out
    assert body["data"][0]["code"] == second_code
    assert body["data"][0]["clicks"] == {"click": 0, "view": 0, "tap": 1}
    assert body["data"][1]["clicks"] == {"click": 3, "view": 2, "tap": 0}
    assert body["data"][1]["product_title"].endswith("tee") and body["next_cursor"] is None

    page = _get(client, api_client, "/v1/creators/creator-1/affiliate-links", limit=1)
    assert [link["id"] for link in page["data"]] == [second]
    rest = _get(
        client, api_client, "/v1/creators/creator-1/affiliate-links", limit=1, cursor=page["next_cursor"]
    )
    assert [link["id"] for link in rest["data"]] == [first] and rest["next_cursor"] is None

    other = _get(client, other_client, "/v1/creators/creator-1/affiliate-links")
    assert [link["id"] for link in other["data"]] == [hidden]
    assert _get(client, api_client, "/v1/creators/nobody/affiliate-links") == {
        "data": [],
        "next_cursor": None,
    }


def test_a_creators_clicks_are_paged_newest_first_and_filtered(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    shop = add_shop(rt, api_client.id)
    link, code = add_link(rt, shop, "creator-1")
    other_link, _ = add_link(rt, add_shop(rt, api_client.id), "creator-1")
    early = add_clicks(rt, link, "click", 2, at=NOW - timedelta(hours=2))
    late = add_clicks(rt, link, "view", 2, at=NOW)
    elsewhere = add_clicks(rt, other_link, "click", 1, at=NOW)
    add_clicks(rt, add_link(rt, add_shop(rt, make_client(rt, "platform-b").id), "creator-1")[0], "click", 4)

    body = _get(client, api_client, "/v1/creators/creator-1/clicks")
    assert [click["click_id"] for click in body["data"]] == elsewhere + late[::-1] + early[::-1]
    assert body["data"][-1]["link_code"] == code and body["data"][-1]["kind"] == "click"
    assert "visitor_hash" not in body["data"][0]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = _get(client, api_client, "/v1/creators/creator-1/clicks", **params)
        seen += [click["click_id"] for click in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [click["click_id"] for click in body["data"]]

    views = _get(client, api_client, "/v1/creators/creator-1/clicks", kind="view")
    assert {click["click_id"] for click in views["data"]} == set(late)
    mine = _get(client, api_client, "/v1/creators/creator-1/clicks", link_code=code)
    assert {click["click_id"] for click in mine["data"]} == set(early + late)
    since = (NOW - timedelta(hours=1)).isoformat()
    recent = _get(client, api_client, "/v1/creators/creator-1/clicks", since=since)
    assert {click["click_id"] for click in recent["data"]} == set(late + elsewhere)
    older = _get(client, api_client, "/v1/creators/creator-1/clicks", until=since)
    assert {click["click_id"] for click in older["data"]} == set(early)


def test_bad_click_filters_are_problems(client: FlaskClient, api_client: ApiClient) -> None:
    path = "/v1/creators/creator-1/clicks"
    for params, field in (
        ({"since": "yesterday"}, "since"),
        ({"kind": "purchase"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"since": NOW.isoformat(), "until": (NOW - timedelta(seconds=1)).isoformat()}, "until"),
    ):
        body = assert_problem(
            client.get(path, query_string=params, headers=api_client.headers), 422, "invalid_request"
        )
        assert [error["field"] for error in body["errors"]] == [field], body
    assert_problem(client.get(path), 401, "unauthorized")
    body = assert_problem(
        client.get("/v1/creators/a%01b/clicks", headers=api_client.headers), 422, "invalid_request"
    )
    assert body["errors"][0]["field"] == "creator_ref"


def test_earnings_sum_each_state_and_currency_with_reversals_after_payout_in_the_balance(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    shop = add_shop(rt, api_client.id)
    link, _ = add_link(rt, shop, "creator-1")
    payout = add_payout(rt, "creator-1")
    paid_order = add_order(rt, shop)
    paid, _ = add_entry(
        rt, shop, "creator-1", 2000, state="paid", link_id=link, order=paid_order, payout_id=payout
    )
    # refunded after the payout: a negative entry of its own, pending, carried into the next balance
    add_entry(rt, shop, "creator-1", -300, link_id=link, order=paid_order, reverses=paid)
    add_entry(rt, shop, "creator-1", 1000, link_id=link)
    add_entry(rt, shop, "creator-1", 500, state="approved", link_id=link)
    add_entry(rt, shop, "creator-1", 150, state="approved", currency="JPY", link_id=link)
    add_entry(rt, shop, "creator-2", 9999, link_id=link)  # another creator
    other = make_client(rt, "platform-b")
    add_entry(rt, add_shop(rt, other.id), "creator-1", 7777)  # another client's merchant

    body = _get(client, api_client, "/v1/creators/creator-1/earnings")
    assert body["creator_ref"] == "creator-1"
    assert body["by_state"] == [
        {"state": "approved", "currency": "JPY", "amount_minor": 150, "entries": 1},
        {"state": "pending", "currency": "USD", "amount_minor": 700, "entries": 2},
        {"state": "approved", "currency": "USD", "amount_minor": 500, "entries": 1},
        {"state": "paid", "currency": "USD", "amount_minor": 2000, "entries": 1},
    ]
    assert body["currencies"] == [
        {
            "currency": "JPY",
            "pending_minor": 0,
            "approved_minor": 150,
            "paid_minor": 0,
            "balance_minor": 150,
            "total_minor": 150,
            "entries": 1,
        },
        {
            "currency": "USD",
            "pending_minor": 700,
            "approved_minor": 500,
            "paid_minor": 2000,
            "balance_minor": 1200,
            "total_minor": 3200,
            "entries": 4,
        },
    ]
    mine = _get(client, other, "/v1/creators/creator-1/earnings")
    assert [(c["currency"], c["balance_minor"]) for c in mine["currencies"]] == [("USD", 7777)]
    narrowed = _get(client, api_client, "/v1/creators/creator-1/earnings", merchant_id=shop.merchant_id)
    assert narrowed["currencies"] == body["currencies"]
    nothing = _get(client, api_client, "/v1/creators/nobody/earnings")
    assert nothing == {"creator_ref": "nobody", "by_state": [], "currencies": []}


def test_earnings_of_an_unknown_or_foreign_merchant_are_problems(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    foreign = add_shop(rt, make_client(rt, "platform-b").id)
    path = "/v1/creators/creator-1/earnings"
    for merchant_id in (foreign.merchant_id, 999_999):
        assert_problem(
            client.get(path, query_string={"merchant_id": merchant_id}, headers=api_client.headers),
            404,
            "merchant_not_found",
        )
    assert_problem(
        client.get(path, query_string={"merchant_id": "shop"}, headers=api_client.headers),
        422,
        "invalid_request",
    )


def test_a_link_made_through_the_api_is_read_back_with_its_program(
    rt: runtime.Runtime, tmp_path: Path, cli: Callable[..., str]
) -> None:
    shop = make_shop(rt, tmp_path, stock=(5,), prices=(1_000,))
    product = product_of(rt, shop.variants[0])
    program = create_program(
        shop, default_rate_bps=1200, product_rates=[{"product_id": product, "rate_bps": 2500}]
    )
    made = make_link(shop, "creator-api", product)

    listed = shop.http().get("/v1/creators/creator-api/affiliate-links", headers=shop.auth).get_json()
    (link,) = listed["data"]
    assert (link["code"], link["program_id"], link["product_id"]) == (made["code"], program["id"], product)
    assert link["url"] == made["url"] and link["url"].endswith("/l/" + made["code"])
    assert link["locked_rate_bps"] == 2500 and link["clicks"] == {"click": 0, "view": 0, "tap": 0}

    shown = json.loads(cli("programs", "show", str(program["id"]), "--json"))
    assert shown["links"] == 1 and shown["default_rate_bps"] == 1200
    assert [(rate["product_id"], rate["rate_bps"]) for rate in shown["rates"]] == [(product, 2500)]
