"""Seeding and HTTP helpers shared by the affiliate program, link, attribution and ledger tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select, update

from connector.bench.shopify import add_shopify_merchant, bind_variants
from connector.infra import runtime
from connector.infra.models import CommissionEntry, Merchant, Product, Variant
from connector.orders import push
from connector.sandbox.shopify.app import Server
from tests.integration.checkout_support import Shop, build_app, make_client, post_order


@contextmanager
def shopify_shop(rt: runtime.Runtime, store: Server) -> Iterator[Shop]:
    """A platform client with one Shopify merchant (the emulator `store`), its variants bound and not
    stock-tracked, served by an app."""
    push._adapters.clear()
    client_id, auth = make_client(rt, "platform")
    merchant_id = add_shopify_merchant(rt, store.url)
    variants = bind_variants(rt, merchant_id, store.store)
    with rt.db.session() as session:
        session.execute(update(Merchant).values(platform_client_id=client_id))
        session.execute(update(Variant).values(inventory_tracked=False))
    try:
        yield Shop(rt, build_app(rt), client_id, auth, merchant_id, variants)
    finally:
        push._adapters.clear()


def price_of(rt: runtime.Runtime, variant_id: int) -> int:
    with rt.db.session() as session:
        price: int = session.scalar(select(Variant.price_minor).where(Variant.id == variant_id))
        return price


def place_order(shop: Shop, quantities: dict[int, int], **attribution: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "lines": [
            {"variant_id": v, "quantity": q, "unit_price_minor": price_of(shop.rt, v)}
            for v, q in quantities.items()
        ],
        "currency": "USD",
    }
    if attribution:
        body["attribution"] = attribution
    response = post_order(shop.http(), shop.auth, body)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def entries(rt: runtime.Runtime) -> list[CommissionEntry]:
    with rt.db.session() as session:
        found = list(session.scalars(select(CommissionEntry).order_by(CommissionEntry.id)))
        session.expunge_all()
        return found


def product_of(rt: runtime.Runtime, variant_id: int) -> int:
    with rt.db.session() as session:
        product_id: int = session.scalar(select(Variant.product_id).where(Variant.id == variant_id))
        return product_id


def add_product(rt: runtime.Runtime, shop: Shop, price: int, name: str) -> tuple[int, int]:
    """Another product of the shop's merchant with one untracked variant: (product id, variant id)."""
    with rt.db.session() as session:
        product = Product(merchant_id=shop.merchant_id, external_id=f"{name}-p", title=name, content_hash="")
        session.add(product)
        session.flush()
        variant = Variant(
            merchant_id=shop.merchant_id,
            product_id=product.id,
            external_id=f"{name}-v",
            title=name,
            price_minor=price,
            currency="USD",
            inventory_tracked=False,
            content_hash="",
        )
        session.add(variant)
        session.flush()
        return product.id, variant.id


def create_program(shop: Shop, **body: Any) -> dict[str, Any]:
    payload = {"merchant_id": shop.merchant_id, "kind": "open", "name": "Everyone", **body}
    if payload["kind"] == "open":
        payload.setdefault("default_rate_bps", 1000)
    response = shop.http().post("/v1/affiliate-programs", json=payload, headers=shop.auth)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def make_link(shop: Shop, creator: str, product_id: int, status: int | None = 201) -> dict[str, Any]:
    """The creator's link (`status` None: made now or before)."""
    response = shop.http().post(
        "/v1/affiliate-links", json={"creator_ref": creator, "product_id": product_id}, headers=shop.auth
    )
    assert response.status_code == status if status else response.status_code in (200, 201), (
        response.get_json()
    )
    result: dict[str, Any] = response.get_json()
    return result


def buy_in_live_session(shop: Shop, variant_id: int, program_id: int | None = None) -> int:
    """A live session of creator `host` (under `program_id` when given) with `variant_id` pinned at 500 minor
    units, started, and two units bought in it: the order is attributed to the host. Returns the session id."""
    body: dict[str, Any] = {"merchant_id": shop.merchant_id, "title": "Drop", "creator_ref": "host"}
    if program_id is not None:
        body["affiliate_program_id"] = program_id
    made = shop.http().post("/v1/live-sessions", json=body, headers=shop.auth)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["affiliate_program_id"] == program_id
    session_id = int(made.get_json()["id"])
    pin = shop.http().post(
        f"/v1/live-sessions/{session_id}/pins",
        json={"variant_id": variant_id, "flash_price_minor": 500, "allocation": 5},
        headers=shop.auth,
    )
    assert pin.status_code == 201, pin.get_json()
    assert shop.http().post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth).status_code == 200
    order = {
        "lines": [{"variant_id": variant_id, "quantity": 2, "unit_price_minor": 500}],
        "currency": "USD",
        "buyer": {"ref": "buyer-1"},
        "live_session_id": session_id,
    }
    bought = post_order(shop.http(), shop.auth, order)
    assert bought.status_code == 201, bought.get_json()
    assert bought.get_json()["attribution"] == {"creator_ref": "host", "via": "live"}
    return session_id
