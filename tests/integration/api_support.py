"""Seed data and helpers for the Platform API tests: clients with keys, merchants, products, stock, holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.infra import runtime
from connector.infra.models import InventoryLevel, Merchant, Product, Reservation, Variant
from tests.helpers import build_app as build_app  # re-exported for the tests that use this module
from tests.helpers import make_client as make_client

Runtime = runtime.Runtime
_serial = itertools.count(1)


@dataclass
class Seeded:
    merchant_id: int
    product_ids: list[int] = field(default_factory=list)
    variant_ids: list[int] = field(default_factory=list)


def add_merchant(
    rt: Runtime,
    client_id: int | None,
    *,
    name: str | None = None,
    buffer: int = 0,
    location: str | None = None,
    status: str = "installed",
    kind: str = "shopify",
) -> int:
    """A merchant row of `client_id` (a Shopify store by default, so it takes orders; no test calls it),
    named `name` or, by default, a name of its own (names are unique)."""
    serial = next(_serial)
    with rt.db.session() as session:
        merchant = Merchant(
            kind=kind,
            store_ref=f"{name or 'shop'}-{serial}",
            name=name or f"shop-{serial}",
            status=status,
            platform_client_id=client_id,
            config={},
            inventory_buffer=buffer,
            location_ref=location,
        )
        session.add(merchant)
        session.flush()
        return merchant.id


def add_product(
    rt: Runtime,
    merchant_id: int,
    *,
    title: str = "Tee",
    status: str = "active",
    variants: list[dict[str, Any]] | None = None,
    updated_at: datetime | None = None,
) -> tuple[int, list[int]]:
    """A product with variants; each variant dict may carry `stock` (level at `location`) and `held`."""
    specs = variants if variants is not None else [{"sku": None, "price_minor": 1999, "stock": 5}]
    with rt.db.session() as session:
        serial = next(_serial)
        product = Product(
            merchant_id=merchant_id,
            external_id=f"p{serial}",
            title=title,
            description="",
            media=[{"url": "https://cdn.example.com/a.jpg"}],
            status=status,
            content_hash="0" * 32,
        )
        if updated_at is not None:
            product.created_at = product.updated_at = updated_at
        session.add(product)
        session.flush()
        ids = []
        for index, spec in enumerate(specs):
            variant = Variant(
                merchant_id=merchant_id,
                product_id=product.id,
                external_id=f"v{serial}-{index}",
                title=spec.get("title", f"Size {index}"),
                sku=spec.get("sku"),
                price_minor=spec.get("price_minor", 1000),
                compare_at_minor=spec.get("compare_at_minor"),
                currency=spec.get("currency", "USD"),
                inventory_tracked=spec.get("tracked", True),
                options=[{"name": "Size", "value": str(index)}],
                content_hash="0" * 32,
            )
            session.add(variant)
            session.flush()
            ids.append(variant.id)
            for location, quantity in spec.get("levels", {"default": spec.get("stock")}).items():
                if quantity is not None:
                    session.add(
                        InventoryLevel(
                            merchant_id=merchant_id,
                            variant_id=variant.id,
                            location_ref=location,
                            available=quantity,
                        )
                    )
            for state, quantity in spec.get("held", {}).items():
                session.add(
                    Reservation(
                        id=f"r{next(_serial)}",
                        merchant_id=merchant_id,
                        variant_id=variant.id,
                        quantity=quantity,
                        state=state,
                    )
                )
        return product.id, ids


def seed_catalog(
    rt: Runtime, client_id: int, *, products: int = 3, name: str | None = None, buffer: int = 1
) -> Seeded:
    """A merchant of `client_id` with `products` products of two variants each (one with a SKU)."""
    seeded = Seeded(merchant_id=add_merchant(rt, client_id, name=name, buffer=buffer))
    for index in range(products):
        product_id, variant_ids = add_product(
            rt,
            seeded.merchant_id,
            title=f"{name} product {index}",
            status="active" if index % 2 == 0 else "draft",
            variants=[
                {
                    "sku": f"{name}-sku-{index}",
                    "price_minor": 2500 + index,
                    "stock": 10,
                    "held": {"active": 2},
                },
                {"sku": None, "price_minor": 990, "currency": "USD", "tracked": False},
            ],
        )
        seeded.product_ids.append(product_id)
        seeded.variant_ids.extend(variant_ids)
    return seeded
