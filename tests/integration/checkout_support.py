"""Seeding and HTTP helpers shared by the checkout, reservation and live-shopping tests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.infra import runtime
from connector.infra.models import EventPayload, InventoryLevel, Order, Product, Reservation, Variant
from connector.merchants.records import create_merchant
from tests.helpers import assert_problem as assert_problem  # re-exported for the tests that use this module
from tests.helpers import build_app as build_app
from tests.helpers import make_client as make_client

_keys = itertools.count(1)


@dataclass
class Shop:
    """A platform client with one merchant (a Shopify store by default) and its variants, served by an app."""

    rt: runtime.Runtime
    app: Flask
    client_id: int
    auth: dict[str, str]
    merchant_id: int
    variants: list[int]

    def http(self) -> FlaskClient:
        return self.app.test_client()


def add_merchant(
    rt: runtime.Runtime,
    tmp: Path,
    client_id: int,
    *,
    name: str = "shop",
    stock: Sequence[int | None] = (10, 10),
    prices: Sequence[int] | None = None,
    buffer: int = 0,
    kind: str = "shopify",
) -> tuple[int, list[int]]:
    """A merchant of `client_id` with one variant per `stock` entry (None: stock not tracked): a Shopify store
    that no test calls (its address is a closed port), or with `kind="feed"` a product feed (takes no orders)."""
    prices = prices or [1_250 + 100 * i for i in range(len(stock))]
    if kind == "feed":
        feed = tmp / f"{name}.csv"
        feed.write_text("id,title,price\n", encoding="utf-8")
        config: dict[str, Any] = {"url": str(feed)}
    else:
        config = {"shop": f"{name}-{next(_keys)}.myshopify.com", "base_url": "http://127.0.0.1:9"}
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind=kind,
            name=name,
            config=config,
            credentials={"access_token": "shpat_unused"} if kind == "shopify" else None,
            inventory_buffer=buffer,
            platform_client_id=client_id,
        )
        product = Product(merchant_id=merchant.id, external_id=f"{name}-p", title="Mug", content_hash="")
        session.add(product)
        session.flush()
        ids: list[int] = []
        for index, (quantity, price) in enumerate(zip(stock, prices, strict=True)):
            variant = Variant(
                merchant_id=merchant.id,
                product_id=product.id,
                external_id=f"{name}-v{index}",
                title=f"Mug {index}",
                price_minor=price,
                currency="USD",
                inventory_tracked=quantity is not None,
                content_hash="",
            )
            session.add(variant)
            session.flush()
            if quantity is not None:
                session.add(
                    InventoryLevel(
                        merchant_id=merchant.id,
                        variant_id=variant.id,
                        location_ref="default",
                        available=quantity,
                        source_updated_at=datetime.now(UTC),
                    )
                )
            ids.append(variant.id)
        return merchant.id, ids


def make_shop(rt: runtime.Runtime, tmp: Path, **kwargs: Any) -> Shop:
    client_id, auth = make_client(rt, f"platform-{next(_keys)}")
    merchant_id, variants = add_merchant(rt, tmp, client_id, **kwargs)
    return Shop(rt, build_app(rt), client_id, auth, merchant_id, variants)


def order_body(variant_id: int, price: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "lines": [{"variant_id": variant_id, "quantity": quantity, "unit_price_minor": price}],
        "currency": "USD",
        **extra,
    }


def live_pin(shop: Shop, *, flash: int, allocation: int = 3, limit: int | None = None) -> tuple[int, int]:
    """A started live session with the shop's first variant pinned at `flash`; (session id, pin id)."""
    http = shop.http()
    made = http.post(
        "/v1/live-sessions", json={"merchant_id": shop.merchant_id, "title": "Drop"}, headers=shop.auth
    )
    assert made.status_code == 201, made.get_json()
    session_id: int = made.get_json()["id"]
    pin = http.post(
        f"/v1/live-sessions/{session_id}/pins",
        json={
            "variant_id": shop.variants[0],
            "flash_price_minor": flash,
            "allocation": allocation,
            **({"per_buyer_limit": limit} if limit else {}),
        },
        headers=shop.auth,
    )
    assert pin.status_code == 201, pin.get_json()
    assert http.post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth).status_code == 200
    return session_id, int(pin.get_json()["id"])


def post_order(http: FlaskClient, auth: dict[str, str], body: dict[str, Any], key: str | None = None) -> Any:
    headers = {**auth, "Idempotency-Key": key or f"key-{next(_keys)}"}
    return http.post("/v1/orders", json=body, headers=headers)


def held(rt: runtime.Runtime, variant_id: int) -> int:
    with rt.db.session() as session:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
                    Reservation.variant_id == variant_id, Reservation.state == "active"
                )
            )
            or 0
        )


def counter(rt: runtime.Runtime, key: str) -> int | None:
    value = rt.redis.hget(key, "n")
    return int(value) if value is not None else None


def order_count(rt: runtime.Runtime, **where: Any) -> int:
    with rt.db.session() as session:
        query = select(func.count()).select_from(Order)
        for name, value in where.items():
            query = query.where(getattr(Order, name) == value)
        return int(session.scalar(query) or 0)


def events_of(rt: runtime.Runtime, kind: str) -> list[dict[str, Any]]:
    with rt.db.session() as session:
        return [
            dict(data)
            for data in session.scalars(
                select(EventPayload.data).where(EventPayload.type == kind).order_by(EventPayload.occurred_at)
            )
        ]


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run `work(i)` for i in range(count) on that many threads started together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
