"""Commission programs and creators' links over HTTP: validation with stable problem codes, targeted offers
winning over the open rate, one link per creator and product, and the rate lock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.infra import runtime
from tests.helpers import wait_for
from tests.integration.affiliate_support import add_product, create_program, make_link, product_of
from tests.integration.checkout_support import Shop, assert_problem, make_shop

Runtime = runtime.Runtime


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(50,), prices=(1_000,))


def test_an_open_program_is_made_read_and_hidden_from_other_clients(rt: Runtime, shop: Shop, tmp_path: Path):
    product = product_of(rt, shop.variants[0])
    made = create_program(
        shop, default_rate_bps=1000, product_rates=[{"product_id": product, "rate_bps": 2500}]
    )
    assert made["kind"] == "open" and made["status"] == "active"
    assert made["product_rates"] == [{"product_id": product, "rate_bps": 2500}]
    assert made["attribution_window_seconds"] == 7 * 86400 and made["hold_seconds"] == 30 * 86400
    got = shop.http().get(f"/v1/affiliate-programs/{made['id']}", headers=shop.auth)
    assert got.status_code == 200 and got.get_json() == made
    other = make_shop(rt, tmp_path, name="other")
    assert_problem(
        other.http().get(f"/v1/affiliate-programs/{made['id']}", headers=other.auth), 404, "program_not_found"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"default_rate_bps": 99}, "rate_out_of_range"),
        ({"default_rate_bps": 8001}, "rate_out_of_range"),
        ({"attribution_window_seconds": 0}, "window_not_positive"),
        ({"hold_seconds": -5}, "window_not_positive"),
        ({"product_rates": [{"product_id": 999_999, "rate_bps": 500}]}, "product_not_found"),
        ({"kind": "targeted", "product_rates": []}, "invalid_program"),
        ({"merchant_id": 999_999}, "merchant_not_found"),
        ({"default_rate_bps": "10%"}, "invalid_request"),
    ],
)
def test_bad_programs_are_refused_with_their_codes(shop: Shop, body: dict, code: str):
    payload = {"merchant_id": shop.merchant_id, "kind": "open", "name": "x", "default_rate_bps": 1000, **body}
    if payload["kind"] == "targeted":
        payload.pop("default_rate_bps")
    response = shop.http().post("/v1/affiliate-programs", json=payload, headers=shop.auth)
    assert_problem(response, 422, code)
    assert shop.http().get("/v1/affiliate-programs/1", headers=shop.auth).status_code == 404


def test_a_second_open_program_is_refused_and_an_ended_one_stays_ended(rt: Runtime, shop: Shop):
    first = create_program(shop)
    again = shop.http().post(
        "/v1/affiliate-programs",
        json={"merchant_id": shop.merchant_id, "kind": "open", "name": "x", "default_rate_bps": 500},
        headers=shop.auth,
    )
    assert assert_problem(again, 409, "program_exists")["program_id"] == first["id"]
    ended = shop.http().patch(
        f"/v1/affiliate-programs/{first['id']}", json={"status": "ended"}, headers=shop.auth
    )
    assert ended.status_code == 200 and ended.get_json()["status"] == "ended"
    assert ended.get_json()["ended_at"] is not None
    changed = shop.http().patch(
        f"/v1/affiliate-programs/{first['id']}", json={"default_rate_bps": 900}, headers=shop.auth
    )
    assert_problem(changed, 409, "program_ended")
    assert_problem(
        shop.http().post(
            "/v1/affiliate-links",
            json={"creator_ref": "c-1", "product_id": product_of(rt, shop.variants[0])},
            headers=shop.auth,
        ),
        422,
        "not_in_program",
    )
    create_program(shop, default_rate_bps=500)  # a new open program may start once the old one ended


def test_one_link_per_creator_and_product_with_an_unguessable_code(rt: Runtime, shop: Shop):
    product = product_of(rt, shop.variants[0])
    create_program(shop)
    made = make_link(shop, "creator-1", product)
    assert re.fullmatch(r"[A-Za-z0-9_-]{11,}", made["code"])
    assert made["url"].endswith(f"/l/{made['code']}")
    assert made["rate_bps"] == 1000 and made["locked_rate_bps"] == 1000
    again = make_link(shop, "creator-1", product, status=200)
    assert again == made
    by_variant = shop.http().post(
        "/v1/affiliate-links",
        json={"creator_ref": "creator-1", "variant_id": shop.variants[0]},
        headers=shop.auth,
    )
    assert by_variant.status_code == 200 and by_variant.get_json()["code"] == made["code"]
    other = make_link(shop, "creator-2", product)
    assert other["code"] != made["code"]
    missing = shop.http().post(
        "/v1/affiliate-links", json={"creator_ref": "c", "product_id": 999_999}, headers=shop.auth
    )
    assert_problem(missing, 422, "product_not_found")
    assert_problem(
        shop.http().post("/v1/affiliate-links", json={"creator_ref": "c"}, headers=shop.auth),
        422,
        "invalid_request",
    )


def test_a_targeted_offer_wins_over_the_open_rate_for_its_creator_only(rt: Runtime, shop: Shop):
    product = product_of(rt, shop.variants[0])
    other_product, _ = add_product(rt, shop, 500, "spoon")
    create_program(shop, default_rate_bps=1000)
    create_program(
        shop,
        kind="targeted",
        name="For star",
        creator_ref="star",
        product_rates=[{"product_id": product, "rate_bps": 3000}],
    )
    assert make_link(shop, "star", product)["rate_bps"] == 3000
    assert make_link(shop, "star", other_product)["rate_bps"] == 1000  # not in the offer: the open rate
    assert make_link(shop, "someone", product)["rate_bps"] == 1000


def test_a_cut_waits_for_the_lock_and_a_raise_applies_at_once(rt: Runtime, shop: Shop):
    product = product_of(rt, shop.variants[0])
    program = create_program(shop, default_rate_bps=1000, rate_lock_seconds=2)
    locked = make_link(shop, "early", product)
    patch = f"/v1/affiliate-programs/{program['id']}"
    assert shop.http().patch(patch, json={"default_rate_bps": 500}, headers=shop.auth).status_code == 200
    assert make_link(shop, "early", product, status=200)["rate_bps"] == 1000  # locked
    assert make_link(shop, "late", product)["rate_bps"] == 500
    assert shop.http().patch(patch, json={"default_rate_bps": 1500}, headers=shop.auth).status_code == 200
    assert make_link(shop, "early", product, status=200)["rate_bps"] == 1500  # a raise at once
    assert shop.http().patch(patch, json={"default_rate_bps": 400}, headers=shop.auth).status_code == 200
    assert make_link(shop, "early", product, status=200)["rate_bps"] == 1000
    wait_for(
        lambda: make_link(shop, "early", product, status=200)["rate_bps"] == 400,
        timeout=10,
        what="the cut to apply once the lock ended",
    )
    assert locked["locked_rate_bps"] == 1000


def test_product_rates_merge_and_a_null_rate_removes_one(rt: Runtime, shop: Shop):
    product = product_of(rt, shop.variants[0])
    spoon, _ = add_product(rt, shop, 500, "spoon")
    program = create_program(shop, product_rates=[{"product_id": product, "rate_bps": 2000}])
    changed = shop.http().patch(
        f"/v1/affiliate-programs/{program['id']}",
        json={
            "product_rates": [
                {"product_id": spoon, "rate_bps": 3000},
                {"product_id": product, "rate_bps": None},
            ]
        },
        headers=shop.auth,
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["product_rates"] == [{"product_id": spoon, "rate_bps": 3000}]
    bad = shop.http().patch(
        f"/v1/affiliate-programs/{program['id']}",
        json={"product_rates": [{"product_id": spoon, "rate_bps": 9000}]},
        headers=shop.auth,
    )
    assert_problem(bad, 422, "rate_out_of_range")
