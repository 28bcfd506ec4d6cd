"""A full Shopify catalog sync through the emulator's bulk export, read as Shopify documents the format:
lines of types Storelink does not model are ignored, refused lines name their product, and no product a line
of the export refers to is deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connector.infra import runtime
from connector.infra.models import EventPayload, Product, Variant
from connector.merchants.records import create_merchant
from connector.sandbox.shopify import Server, serve
from tests.helpers import sync_now

PRODUCTS, VARIANTS_EACH = 5, 2


@pytest.fixture
def shop(rt: runtime.Runtime) -> Iterator[tuple[Server, int]]:
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(PRODUCTS, VARIANTS_EACH)
        with rt.db.session() as session:
            merchant = create_merchant(
                session,
                rt.secrets,
                kind="shopify",
                name="bulk",
                config={"shop": server.store.shop.myshopify_domain, "base_url": server.url},
                credentials={"access_token": "shpat_sandbox"},
            )
            merchant_id = merchant.id
        first = sync_now(rt, merchant_id)
        assert first.status == "succeeded" and first.failed_rows == 0, first.row_errors
        yield server, merchant_id


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _edit(products: list[int]) -> Any:
    """The export as a shop whose data Storelink partly cannot read would give it."""
    replaced, rejected, extras, _, _ = (gid("Product", n) for n in products)

    def edit(lines: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for number, line in enumerate(lines):
            record = json.loads(line)
            parent = record.get("__parentId")
            if parent in (replaced, rejected) and "ProductVariant" in record.get("id", ""):
                # Its variants were replaced in the store by new ones whose price cannot be read.
                record["id"] = gid("ProductVariant", 990_000 + number)
                record["price"] = "not-a-price"
            if record.get("id") == rejected:
                record["status"] = "RETIRED"  # a product status Storelink does not know
            out.append(json.dumps(record).encode())
        out += [  # lines of types the catalog does not model, as a wider query would return them
            json.dumps({"id": gid("Metafield", 7), "namespace": "custom", "key": "k", "__parentId": extras}),
            json.dumps({"__typename": "Video", "__parentId": extras}),
            json.dumps(
                {"__typename": "Metafield", "id": gid("Metafield", 8), "__parentId": gid("Metafield", 7)}
            ),
            json.dumps({"id": gid("Collection", 3), "title": "Summer"}),
        ]
        return [line if isinstance(line, bytes) else line.encode() for line in out]

    return edit


def test_a_full_bulk_sync_keeps_every_product_the_export_refers_to(rt: runtime.Runtime, shop):
    server, merchant_id = shop
    store = server.store
    numbers = sorted(store.products)
    replaced, rejected, _, blank_sku, gone = numbers
    blank_variant = store.products[blank_sku].variants[0]
    store.update_product(blank_sku, variants={blank_variant.legacy_resource_id: {"sku": ""}})
    store.delete_product(gone)
    server.emulator.bulk.edit_export = _edit(numbers)

    run = sync_now(rt, merchant_id)

    assert run.status == "succeeded", run.error
    errors = [e["error"] for e in run.row_errors]
    # Refused: the two new variants of each edited product and the product with an unknown status.
    assert run.failed_rows == 5, errors
    assert not [e for e in errors if any(t in e for t in ("Metafield", "Video", "Collection", "typename"))]
    with rt.db.session() as session:
        status = dict(
            session.execute(
                select(Product.external_id, Product.status).where(Product.merchant_id == merchant_id)
            ).all()
        )
        deleted = [
            e.data["external_id"]
            for e in session.scalars(
                select(EventPayload).where(
                    EventPayload.merchant_id == merchant_id, EventPayload.type == "product.deleted"
                )
            )
        ]
        sku = session.scalar(
            select(Variant.sku).where(
                Variant.external_id == gid("ProductVariant", blank_variant.legacy_resource_id)
            )
        )
    assert deleted == [gid("Product", gone)]
    assert {ref: s for ref, s in status.items() if s == "deleted"} == {gid("Product", gone): "deleted"}
    assert status[gid("Product", replaced)] == status[gid("Product", rejected)] == "active"
    assert sku == ""
