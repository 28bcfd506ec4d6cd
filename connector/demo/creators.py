"""The demo's creators: a commission program per store that takes orders (the Shopify one with a short hold,
so its commission is approved during the demo; the Walmart one with the default 30 days, so it stays
pending), each creator's links to products of both stores and to the flash-sale product, visits through the
links' public redirect (`GET /l/{code}`), a brand showcase and a creator's showcase."""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import requests

from connector.demo.api import BROWSER, TIMEOUT, ApiError
from connector.demo.services import FLASH_SKU
from connector.demo.stage import Link, Stage

logger = logging.getLogger(__name__)

RATES_BPS: Final = {"shopify": 1_000, "walmart": 800}
HOLD_SECONDS: Final = {"shopify": 5}
"""The Shopify program's hold, short enough to end within the demo; Walmart's keeps the default (30 days)."""
LINKED_PRODUCTS: Final = 2
"""Products of each store a creator links to, besides the flash-sale product."""
VISITS_PER_LINK: Final = 4
LINKED_BUYER_EVERY: Final = 3
"""Every third flash-sale buyer comes through a creator's link."""
SHOWCASE_ITEMS: Final = 20


def _products(stage: Stage, merchant: str, count: int) -> list[dict[str, Any]]:
    """The first `count` products of a merchant with sellable stock in every variant."""
    page = stage.platform.get("/v1/products", merchant_id=stage.merchants[merchant], limit=100)
    found = [
        product
        for product in page["data"]
        if product["variants"] and all((v["sellable"] or 0) >= 10 for v in product["variants"])
    ]
    return found[:count]


def flash_variant(stage: Stage) -> dict[str, Any]:
    """The flash-sale product's variant, found by its SKU."""
    page = stage.platform.get("/v1/products", merchant_id=stage.merchants["shopify"], sku=FLASH_SKU)
    if not page["data"]:
        raise LookupError(f"the flash-sale product ({FLASH_SKU}) was not synced")
    variant: dict[str, Any] = page["data"][0]["variants"][0]
    return variant


def _visit(stage: Stage, code: str, visitor: str) -> str:
    """One visit through a link's public redirect; the click id the platform's landing page receives."""
    response = requests.get(
        f"{stage.web_url}/l/{code}",
        headers={"User-Agent": BROWSER, "X-Platform-Visitor": visitor},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if response.status_code != 302:
        raise ApiError("GET", f"/l/{code}", response.status_code, response.text)
    (click_id,) = parse_qs(urlsplit(response.headers["Location"]).query)["sl_click"]
    return click_id


def _link(stage: Stage, creator: str, product_id: int, merchant: str, visits: int) -> Link:
    made = stage.platform.post("/v1/affiliate-links", {"creator_ref": creator, "product_id": product_id})
    code = str(made["code"])
    clicks = tuple(_visit(stage, code, f"{creator}-fan-{n}") for n in range(visits))
    if clicks:
        _visit(stage, code, f"{creator}-fan-0")  # a repeat visit: the same click, counted once
    return Link(creator, code, product_id, merchant, clicks)


def programs_and_links(stage: Stage) -> str:
    for merchant, rate in RATES_BPS.items():
        body: dict[str, Any] = {
            "merchant_id": stage.merchants[merchant],
            "kind": "open",
            "name": f"{merchant.title()} creators",
            "default_rate_bps": rate,
        }
        if merchant in HOLD_SECONDS:
            body["hold_seconds"] = HOLD_SECONDS[merchant]
        stage.programs[merchant] = int(stage.platform.post("/v1/affiliate-programs", body)["id"])
    flash = flash_variant(stage)
    stage.facts["flash_variant"] = flash
    creators = stage.creators()
    linked_buyers = -(-stage.sizes.buyers // LINKED_BUYER_EVERY)
    per_creator = -(-linked_buyers // len(creators))
    for creator in creators:
        stage.links.append(_link(stage, creator, int(flash["product_id"]), "shopify", per_creator))
        for merchant in RATES_BPS:
            for product in _products(stage, merchant, LINKED_PRODUCTS):
                stage.links.append(_link(stage, creator, int(product["id"]), merchant, VISITS_PER_LINK))
    visits = sum(len(link.click_ids) for link in stage.links)
    return f"{len(stage.programs)} programs, {len(stage.links)} links, {visits} visits counted"


def showcases(stage: Stage) -> str:
    """The Shopify brand's newest products in stock, and the first creator's picks from both stores: the
    products it links to by hand, then the best sellers (each item carries the creator's link)."""
    brand = stage.platform.post(
        "/v1/showcases",
        {
            "owner_kind": "merchant",
            "merchant_id": stage.merchants["shopify"],
            "title": "New this week",
            "handle": "new-this-week",
            "rule": {"sort": "newest", "in_stock_only": True},
            "max_items": SHOWCASE_ITEMS,
        },
    )
    creator = stage.creators()[0]
    picks = [link.product_id for link in stage.links if link.creator_ref == creator]
    own = stage.platform.post(
        "/v1/showcases",
        {
            "owner_kind": "creator",
            "creator_ref": creator,
            "title": f"{creator}'s picks",
            "handle": "picks",
            "product_ids": picks,
            "rule": {
                "merchant_ids": [stage.merchants["shopify"], stage.merchants["walmart"]],
                "sort": "best_selling",
            },
            "max_items": SHOWCASE_ITEMS,
        },
    )
    stage.showcases = [int(brand["id"]), int(own["id"])]
    items = sum(showcase_items(stage, showcase_id) for showcase_id in stage.showcases)
    return f"2 showcases, {items} items shown"


def showcase_items(stage: Stage, showcase_id: int) -> int:
    """The items a viewer sees in a showcase now, over every page."""
    count, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        view = stage.platform.get(f"/v1/showcases/{showcase_id}", **params)
        count += len(view["items"])
        cursor = view.get("next_cursor")
        if not cursor:
            return count
