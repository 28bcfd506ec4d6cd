"""Seeding and HTTP helpers shared by the showcase tests, and the platform receiver they deliver to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.infra import runtime
from connector.infra.models import EventPayload, Product
from connector.merchants.records import create_merchant
from connector.sandbox.platform import Server, serve
from connector.showcases import cache
from connector.showcases import events as showcase_event_subscribers
from tests.helpers import ApiClient
from webhooks.outbound import delivery, fanout
from webhooks.outbound.endpoints import create_endpoint


def feed_merchant(rt: runtime.Runtime, feed: Path, client_id: int, name: str = "brand") -> int:
    """A feed merchant of `client_id` reading `feed`."""
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="feed",
            name=name,
            config={"url": str(feed)},
            platform_client_id=client_id,
        )
        return merchant.id


def product_ids(rt: runtime.Runtime, merchant_id: int, **where: Any) -> dict[str, int]:
    """The merchant's product ids by external id."""
    with rt.db.session() as session:
        query = select(Product.external_id, Product.id).where(Product.merchant_id == merchant_id)
        for name, value in where.items():
            query = query.where(getattr(Product, name) == value)
        return {ext: pid for ext, pid in session.execute(query)}


def create(http: FlaskClient, auth: dict[str, str], status: int = 201, **body: Any) -> dict[str, Any]:
    payload = {"title": "Spring", "handle": "spring", **body}
    response = http.post("/v1/showcases", json=payload, headers=auth)
    assert response.status_code == status, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def view(http: FlaskClient, auth: dict[str, str], showcase_id: int, **query: Any) -> dict[str, Any]:
    """Every visible item of the showcase, following the cursor."""
    items: list[dict[str, Any]] = []
    params = dict(query)
    while True:
        response = http.get(f"/v1/showcases/{showcase_id}", query_string=params, headers=auth)
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        items.extend(body["items"])
        if body["next_cursor"] is None:
            return {**body, "items": items}
        params["cursor"] = body["next_cursor"]


def showcase_events(rt: runtime.Runtime, showcase_id: int) -> list[tuple[str, dict[str, Any]]]:
    with rt.db.session() as session:
        rows = session.execute(
            select(EventPayload.type, EventPayload.data)
            .where(EventPayload.type.like("showcase.%"))
            .order_by(EventPayload.id)
        )
        return [(kind, data) for kind, data in rows if data.get("showcase_id") == showcase_id]


def outlive_the_cache() -> None:
    """Wait out the bound on a cached page: a change no event announced shows after at most this long."""
    time.sleep(cache.CACHE_MS / 1000 + 0.05)


@pytest.fixture
def platform(rt: runtime.Runtime, api_client: ApiClient) -> Iterator[Server]:
    """The platform's receiver, subscribed to the client's showcase events; events fan out and refresh."""
    delivery.configure(delivery.DeliveryConfig(allow_private=True, timeout=5))
    fanout.install()
    showcase_event_subscribers.install()
    with serve() as server:
        with rt.db.session() as session:
            created = create_endpoint(
                session,
                rt.secrets,
                url=server.url,
                event_types=["showcase.*"],
                platform_client_id=api_client.id,
                allow_private=True,
            )
        server.receiver.add_secret(created.secret)
        yield server
