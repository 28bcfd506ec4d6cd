"""Checkout guards over HTTP: Redis unreachable (503, nothing written), merchants whose store takes no orders
(422, nothing written), the per-buyer limit across spellings of one buyer, and what an accepted live order
logs."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.app import create_app
from connector.infra import runtime
from connector.infra.models import EventPayload, Order, Reservation
from tests.integration.checkout_support import (
    Shop,
    assert_problem,
    make_shop,
    order_body,
    post_order,
)

Runtime = runtime.Runtime
PRICE = 1_000
FLASH = 700


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(50, 5), prices=(PRICE, PRICE))


def _live(shop: Shop, *, allocation: int = 10, limit: int | None = None) -> int:
    """A live session on sale with the first variant pinned; its id."""
    http = shop.http()
    made = http.post(
        "/v1/live-sessions", json={"merchant_id": shop.merchant_id, "title": "Drop"}, headers=shop.auth
    )
    assert made.status_code == 201, made.get_json()
    session_id: int = made.get_json()["id"]
    pin = {"variant_id": shop.variants[0], "flash_price_minor": FLASH, "allocation": allocation}
    if limit is not None:
        pin["per_buyer_limit"] = limit
    pinned = http.post(f"/v1/live-sessions/{session_id}/pins", json=pin, headers=shop.auth)
    assert pinned.status_code == 201, pinned.get_json()
    assert http.post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth).status_code == 200
    return session_id


def _live_body(shop: Shop, session_id: int, buyer: str) -> dict[str, Any]:
    return order_body(shop.variants[0], FLASH, buyer={"ref": buyer}, live_session_id=session_id)


def _written(rt: Runtime) -> tuple[int, int, int]:
    """Orders, reservations (pin allocations aside) and events in the database."""
    with rt.db.session() as session:
        orders = session.scalar(select(func.count()).select_from(Order)) or 0
        holds = (
            session.scalar(
                select(func.count()).select_from(Reservation).where(Reservation.order_id.is_not(None))
            )
            or 0
        )
        events = session.scalar(
            select(func.count()).select_from(EventPayload).where(EventPayload.type.like("order.%"))
        )
        return int(orders), int(holds), int(events or 0)


# --- Redis unreachable ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def redis_down(shop: Shop) -> Iterator[FlaskClient]:
    """The shop's app as a web process whose Redis does not answer (its URL names a closed port)."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    down = Runtime(settings=shop.rt.settings, redis_url=url)
    try:
        yield create_app(shop.rt.settings, down).test_client()
    finally:
        runtime.install(shop.rt)
        down.close()


def test_an_order_while_redis_is_unreachable_is_a_503_to_retry_and_writes_nothing(
    shop: Shop, redis_down: FlaskClient
) -> None:
    session_id = _live(shop)
    before = _written(shop.rt)

    regular = post_order(redis_down, shop.auth, order_body(shop.variants[0], PRICE))
    live = post_order(redis_down, shop.auth, _live_body(shop, session_id, "b-1"))

    for response in (regular, live):
        body = assert_problem(response, 503, "service_unavailable")
        assert response.headers["Retry-After"] == "5"
        assert "unreachable" in body["detail"]
    assert _written(shop.rt) == before == (0, 0, 0)
    # the same request succeeds once Redis answers
    assert post_order(shop.http(), shop.auth, order_body(shop.variants[0], PRICE)).status_code == 201


# --- what is logged ------------------------------------------------------------------------------------------


def test_an_accepted_live_order_logs_the_buyer_only_at_debug(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = _live(shop)
    caplog.set_level(logging.DEBUG, logger="connector.orders.live_checkout")

    response = post_order(shop.http(), shop.auth, _live_body(shop, session_id, "buyer-secret-7"))

    assert response.status_code == 201, response.get_json()
    mentions = [r for r in caplog.records if "buyer-secret-7" in str(getattr(r, "buyer", ""))]
    assert mentions and all(r.levelno == logging.DEBUG for r in mentions)
    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert all("buyer-secret-7" not in str(vars(r)) for r in above_debug)
    assert any(r.getMessage() == "live order accepted" and r.levelno == logging.INFO for r in above_debug)


# --- stores that take no orders -------------------------------------------------------------------------------


@pytest.fixture
def feed_shop(rt: Runtime, tmp_path: Path) -> Shop:
    """A client whose merchant is a product feed: its adapter declares no order push."""
    return make_shop(rt, tmp_path, stock=(50, 5), prices=(PRICE, PRICE), kind="feed")


def test_an_order_for_a_merchant_whose_store_takes_no_orders_is_refused_and_writes_nothing(
    feed_shop: Shop,
) -> None:
    session_id = _live(feed_shop)
    http = feed_shop.http()

    regular = post_order(http, feed_shop.auth, order_body(feed_shop.variants[0], PRICE))
    live = post_order(http, feed_shop.auth, _live_body(feed_shop, session_id, "b-1"))

    for response in (regular, live):
        body = assert_problem(response, 422, "store_takes_no_orders")
        assert body["merchant_id"] == feed_shop.merchant_id
    assert _written(feed_shop.rt) == (0, 0, 0)
    assert feed_shop.rt.queues["orders"].count == 0


def test_the_order_refusal_follows_the_adapters_declared_capabilities(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision is the adapter's `capabilities` through the registry, whatever the store is called."""
    from connector.domain import registry
    from connector.domain.ports import Capability

    shopify = registry.adapter_class("shopify")
    monkeypatch.setattr(shopify, "capabilities", shopify.capabilities - {Capability.ORDER_PUSH})

    response = post_order(shop.http(), shop.auth, order_body(shop.variants[0], PRICE))

    assert_problem(response, 422, "store_takes_no_orders")
    monkeypatch.undo()
    assert post_order(shop.http(), shop.auth, order_body(shop.variants[0], PRICE)).status_code == 201


def test_a_walmart_seller_outside_multichannel_solutions_takes_no_orders() -> None:
    from connector.domain import registry

    assert registry.takes_orders("walmart", {"mcs_enrolled": True})
    assert not registry.takes_orders("walmart", {"mcs_enrolled": False})
    assert not registry.takes_orders("feed", {})
    assert registry.takes_orders("shopify", {})
    assert not registry.takes_orders("no-such-kind")


# --- one buyer, many spellings ---------------------------------------------------------------------------------


def test_the_per_buyer_limit_counts_every_spelling_of_one_buyer(shop: Shop) -> None:
    session_id = _live(shop, allocation=10, limit=1)
    http = shop.http()
    assert post_order(http, shop.auth, _live_body(shop, session_id, "alice")).status_code == 201

    for spelling in ("Alice", "ALICE", " alice", "alice\u200b", "\uff41lice", "\u200dAL\u00adICE\ufeff "):
        response = post_order(http, shop.auth, _live_body(shop, session_id, spelling))
        assert_problem(response, 409, "buyer_limit_exceeded")

    assert post_order(http, shop.auth, _live_body(shop, session_id, "bob")).status_code == 201
    for blank in (" ", "\u200b\u2060"):
        assert_problem(
            post_order(http, shop.auth, _live_body(shop, session_id, blank)), 422, "buyer_required"
        )


def test_the_per_buyer_limit_holds_across_a_counter_rebuild_from_holds_written_as_sent(shop: Shop) -> None:
    """Holds recorded before keys were normalized count for the buyer when the counter is rebuilt."""
    from sqlalchemy import update

    from connector.stock import rebuild

    session_id = _live(shop, allocation=10, limit=1)
    http = shop.http()
    assert post_order(http, shop.auth, _live_body(shop, session_id, "Alice")).status_code == 201
    with shop.rt.db.session() as session:  # as an earlier release wrote it
        session.execute(
            update(Reservation).where(Reservation.order_id.is_not(None)).values(buyer_ref="Alice")
        )
        (pin_id,) = session.scalars(select(Reservation.live_pin_id).where(Reservation.order_id.is_not(None)))
    assert pin_id is not None
    rebuild.rebuild_pin(shop.rt, pin_id, only_missing=False)

    assert_problem(
        post_order(http, shop.auth, _live_body(shop, session_id, "alice")), 409, "buyer_limit_exceeded"
    )


def test_the_openapi_document_names_the_checkout_refusals(shop: Shop) -> None:
    document = shop.http().get("/v1/openapi.json").get_json()
    responses = document["paths"]["/v1/orders"]["post"]["responses"]

    assert "`store_takes_no_orders`" in responses["422"]["description"]
    assert "`service_unavailable`" in responses["503"]["description"]
    assert "Retry-After" in responses["503"]["headers"]
