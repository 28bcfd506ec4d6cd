"""The order push job against the Walmart emulator's asynchronous Multichannel acceptance: an order Walmart has
not decided on is retried and looked up before anything is created again; one Walmart refuses is rejected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from connector.bench.shopify import create_orders
from connector.domain.errors import PermanentError, RetryableError
from connector.infra import runtime
from connector.infra.models import EventPayload, Order, Variant
from connector.merchants import connect
from connector.orders import push
from connector.sandbox.walmart import serve
from connector.sandbox.walmart.app import Server
from tests.helpers import sync_now, wait_for

ADDRESS = {
    "name": "Ada Buyer",
    "line1": "1 Main Street",
    "city": "New York",
    "province_code": "NY",
    "country_code": "US",
    "postal_code": "10017",
}


@pytest.fixture
def walmart() -> Iterator[Server]:
    with serve(mcs_delay=1.0) as server:
        server.store.seed_catalog(2, quantity=lambda i: 0 if i == 1 else 50)
        server.store.add_channel("Video commerce")
        yield server


def _order(rt: runtime.Runtime, server: Server, sku_index: int) -> int:
    connected = connect.connect(
        rt,
        "walmart",
        name="wm",
        fields={
            "client_id": server.emulator.client_id,
            "client_secret": server.emulator.client_secret,
            "base_url": server.url,
        },
        config={"mcs_poll_seconds": 0.2},
        public_url="",
        first_sync=False,
    )
    assert sync_now(rt, connected.merchant_id).status == "succeeded"
    with rt.db.session() as session:
        variants = list(session.scalars(select(Variant.id).order_by(Variant.external_id)))
    [order_id] = create_orders(rt, connected.merchant_id, [variants[sku_index]], 1)
    with rt.db.session() as session:
        session.execute(update(Order).where(Order.id == order_id).values(shipping_address=ADDRESS))
    return order_id


def _order_row(rt: runtime.Runtime, order_id: int) -> Order:
    with rt.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        session.expunge(order)
        return order


def test_an_undecided_order_is_retried_and_found_not_created_again(
    rt: runtime.Runtime, walmart: Server
) -> None:
    order_id = _order(rt, walmart, 0)

    with pytest.raises(RetryableError) as undecided:
        push.push_order(order_id)
    assert undecided.value.code == "mcs_pending"
    assert (undecided.value.retry_after or 0) >= rt.settings.http_timeout_seconds
    row = _order_row(rt, order_id)
    assert (row.status, row.push_attempts, row.push_started_at) == ("accepted", 1, None)
    assert walmart.store.fulfilment_orders_created == 1

    [seller_order] = walmart.store.fulfilments
    wait_for(lambda: walmart.store.fulfilments[seller_order].status == "ACCEPTED", 5, "Walmart's decision")
    assert push.push_order(order_id) == seller_order

    row = _order_row(rt, order_id)
    assert (row.status, row.store_order_ref, row.push_attempts) == ("confirmed", seller_order, 2)
    assert walmart.store.fulfilment_attempts == 1  # the retry looked the order up; it created nothing
    assert push.push_order(order_id) is None  # confirmed: nothing more to do


def test_an_order_walmart_refuses_is_rejected(rt: runtime.Runtime, walmart: Server) -> None:
    order_id = _order(rt, walmart, 1)  # no stock at Walmart's fulfilment centres

    with pytest.raises(RetryableError):
        push.push_order(order_id)
    [seller_order] = walmart.store.fulfilments
    wait_for(lambda: walmart.store.fulfilments[seller_order].status == "REJECTED", 5, "Walmart's decision")
    with pytest.raises(PermanentError) as refused:
        push.push_order(order_id)
    assert refused.value.code == "mcs_rejected"

    row = _order_row(rt, order_id)
    assert row.status == "rejected"
    assert row.rejection_reason is not None and "mcs_rejected" in row.rejection_reason
    with rt.db.session() as session:
        types = list(session.scalars(select(EventPayload.type)))
    assert types.count(push.ORDER_REJECTED) == 1
