"""Creators' showcases: products of several merchants whose programs pay the creator, each item carrying the
creator's own affiliate link, made on first need."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.infra import runtime
from connector.infra.models import AffiliateLink
from tests.integration.affiliate_support import create_program, product_of
from tests.integration.checkout_support import Shop, add_merchant, assert_problem, make_shop
from tests.integration.showcase_support import create, view

Runtime = runtime.Runtime
CREATOR = "creator-7"


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(5,), prices=(1_000,))


def _links(rt: Runtime) -> int:
    with rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AffiliateLink)) or 0)


def test_a_creator_showcase_mixes_merchants_and_carries_the_creators_links(
    rt: Runtime, shop: Shop, tmp_path: Path
):
    http, auth = shop.http(), shop.auth
    second, second_variants = add_merchant(rt, tmp_path, shop.client_id, name="second", stock=(3,))
    first_product, second_product = product_of(rt, shop.variants[0]), product_of(rt, second_variants[0])
    create_program(shop, default_rate_bps=1000)
    body = {"owner_kind": "creator", "creator_ref": CREATOR, "product_ids": [first_product, second_product]}

    refused = assert_problem(
        http.post("/v1/showcases", json={"title": "t", "handle": "h", **body}, headers=auth),
        422,
        "not_in_program",
    )
    assert refused["product_ids"] == [second_product]

    response = http.post(
        "/v1/affiliate-programs",
        json={"merchant_id": second, "kind": "open", "name": "All", "default_rate_bps": 500},
        headers=auth,
    )
    assert response.status_code == 201, response.get_json()
    made = create(http, auth, **body)
    assert made["creator_ref"] == CREATOR and made["merchant_id"] is None
    assert _links(rt) == 0

    items = view(http, auth, made["id"])["items"]
    assert [(i["product_id"], i["merchant_id"]) for i in items] == [
        (first_product, shop.merchant_id),
        (second_product, second),
    ]
    codes = [i["link"]["code"] for i in items]
    assert all(i["link"]["url"].endswith(f"/l/{i['link']['code']}") for i in items)
    assert _links(rt) == 2
    assert [i["link"]["code"] for i in view(http, auth, made["id"])["items"]] == codes  # made once
    with rt.db.session() as session:
        assert set(session.scalars(select(AffiliateLink.creator_ref))) == {CREATOR}

    # The creator's link is the one the creator would make through the links API.
    response = http.post(
        "/v1/affiliate-links", json={"creator_ref": CREATOR, "product_id": first_product}, headers=auth
    )
    assert response.status_code == 200 and response.get_json()["code"] == codes[0]


def test_a_creator_rule_draws_from_named_merchants_only_what_pays_the_creator(
    rt: Runtime, shop: Shop, tmp_path: Path
):
    http, auth = shop.http(), shop.auth
    second, second_variants = add_merchant(rt, tmp_path, shop.client_id, name="second", stock=(3,))
    stranger = make_shop(rt, tmp_path, name="stranger")
    create_program(shop, default_rate_bps=1000)  # only the first merchant pays the creator
    base = {"owner_kind": "creator", "creator_ref": CREATOR}

    assert_problem(
        http.post("/v1/showcases", json={"title": "t", "handle": "h", **base, "rule": {}}, headers=auth),
        422,
        "invalid_rule",
    )
    assert_problem(
        http.post(
            "/v1/showcases",
            json={"title": "t", "handle": "h", **base, "rule": {"merchant_ids": [stranger.merchant_id]}},
            headers=auth,
        ),
        422,
        "merchant_not_found",
    )
    made = create(http, auth, **base, rule={"merchant_ids": [shop.merchant_id, second]})
    items = view(http, auth, made["id"])["items"]
    assert [i["product_id"] for i in items] == [product_of(rt, shop.variants[0])]
    assert items[0]["link"] is not None and product_of(rt, second_variants[0]) not in {
        i["product_id"] for i in items
    }

    # Handles are unique per owner: another creator may use the same one, the same creator may not.
    create(http, auth, owner_kind="creator", creator_ref="someone-else", handle=made["handle"])
    assert_problem(
        http.post("/v1/showcases", json={"title": "t", "handle": made["handle"], **base}, headers=auth),
        409,
        "handle_taken",
    )
    listed = http.get("/v1/showcases", query_string={"creator_ref": CREATOR}, headers=auth).get_json()
    assert [s["id"] for s in listed["data"]] == [made["id"]]
