"""Seeding and HTTP helpers shared by the affiliate program, link, attribution and ledger tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from connector.infra import runtime
from connector.infra.models import Product, Variant
from tests.integration.checkout_support import Shop


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


def make_link(shop: Shop, creator: str, product_id: int, status: int = 201) -> dict[str, Any]:
    response = shop.http().post(
        "/v1/affiliate-links", json={"creator_ref": creator, "product_id": product_id}, headers=shop.auth
    )
    assert response.status_code == status, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result
