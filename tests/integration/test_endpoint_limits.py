"""One client cannot weigh on another's checkout through webhook endpoints: endpoints per client and the size of
their event type filters are limited, and the fan-out reads only the endpoints an event may reach."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from connector.infra import runtime
from connector.infra.models import Delivery, WebhookEndpoint
from tests.integration.checkout_support import Shop, make_client, make_shop, order_body, post_order
from webhooks.outbound import endpoints

Runtime = runtime.Runtime
URL = "https://93.184.215.14/hooks"  # a public address: no name to resolve
PRICE = 1_000


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(1_000, 5), prices=(PRICE, PRICE))


def _create(shop: Shop, auth: dict[str, str], **body: Any) -> Any:
    return shop.http().post("/v1/webhook-endpoints", json={"url": URL, **body}, headers=auth)


# --- limits ------------------------------------------------------------------------------------------------------


def test_a_client_may_have_a_limited_number_of_endpoints(shop: Shop) -> None:
    _, other = make_client(shop.rt, "platform-other")
    for _ in range(endpoints.MAX_ENDPOINTS_PER_CLIENT):
        assert _create(shop, shop.auth).status_code == 201

    refused = _create(shop, shop.auth)

    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    body = refused.get_json()
    assert body["code"] == "endpoint_limit_reached" and body["limit"] == endpoints.MAX_ENDPOINTS_PER_CLIENT
    with shop.rt.db.session() as session:
        count = session.scalar(select(func.count()).select_from(WebhookEndpoint))
    assert count == endpoints.MAX_ENDPOINTS_PER_CLIENT
    assert _create(shop, other).status_code == 201  # the limit is per client
    first = shop.http().get("/v1/webhook-endpoints", headers=shop.auth).get_json()["data"][0]["id"]
    assert shop.http().delete(f"/v1/webhook-endpoints/{first}", headers=shop.auth).status_code == 204
    assert _create(shop, shop.auth).status_code == 201


@pytest.mark.parametrize(
    "event_types",
    [
        [f"order.t{i}" for i in range(endpoints.MAX_EVENT_TYPES + 1)],
        ["order." + "a" * endpoints.MAX_EVENT_TYPE_LENGTH],
    ],
    ids=["too-many", "too-long"],
)
def test_event_type_filters_are_limited_in_number_and_length(shop: Shop, event_types: list[str]) -> None:
    created = _create(shop, shop.auth)
    assert created.status_code == 201

    refused = _create(shop, shop.auth, event_types=event_types)
    changed = shop.http().patch(
        f"/v1/webhook-endpoints/{created.get_json()['id']}",
        json={"event_types": event_types},
        headers=shop.auth,
    )

    for response in (refused, changed):
        assert response.status_code == 422, response.get_data(as_text=True)
        assert response.get_json()["code"] == "invalid_request"
    with shop.rt.db.session() as session:
        assert list(session.scalars(select(WebhookEndpoint.event_types))) == [["*"]]
    at_limits = [f"order.t{i}" for i in range(endpoints.MAX_EVENT_TYPES - 1)]
    at_limits.append("order." + "a" * (endpoints.MAX_EVENT_TYPE_LENGTH - len("order.")))
    assert _create(shop, shop.auth, event_types=at_limits).status_code == 201


# --- the fan-out's lookup ----------------------------------------------------------------------------------------


def _add_endpoints(rt: Runtime, client_id: int, count: int, event_types: list[str]) -> None:
    """Endpoints as an earlier release let a client store them (beyond today's limits)."""
    with rt.db.session() as session:
        for index in range(count):
            session.add(
                WebhookEndpoint(
                    public_id=f"we_{client_id}_{index}",
                    platform_client_id=client_id,
                    url=URL,
                    event_types=event_types,
                    secret_encrypted=rt.secrets.encrypt("whsec_test"),
                    enabled=True,
                    consecutive_failures=0,
                )
            )


@contextmanager
def endpoint_rows_read(rt: Runtime) -> Iterator[list[int]]:
    """Rows the statements reading `webhook_endpoints` returned (each statement run again once it is done)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "FROM webhook_endpoints" in statement:
            seen.append((statement, parameters))

    counts: list[int] = []
    event.listen(rt.db.engine, "before_cursor_execute", record)
    try:
        yield counts
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", record)
    with rt.db.engine.connect() as conn:
        for statement, parameters in seen:
            counts.append(len(conn.exec_driver_sql(statement, parameters).all()))


def _checkout_reads(shop: Shop) -> tuple[list[int], int]:
    """Rows each endpoint lookup of one checkout read, and the statements the checkout ran."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(shop.rt.db.engine, "before_cursor_execute", count)
    try:
        with endpoint_rows_read(shop.rt) as rows:
            response = post_order(shop.http(), shop.auth, order_body(shop.variants[0], PRICE))
    finally:
        event.remove(shop.rt.db.engine, "before_cursor_execute", count)
    assert response.status_code == 201, response.get_data(as_text=True)
    return rows, len(statements)


def test_the_fanout_reads_none_of_another_clients_endpoints(shop: Shop) -> None:
    _add_endpoints(shop.rt, shop.client_id, 1, ["order.*"])
    noisy_id, _ = make_client(shop.rt, "platform-noisy")
    _checkout_reads(shop)  # the first checkout also builds the stock counter
    rows_alone, statements_alone = _checkout_reads(shop)

    huge = [f"order.{'x' * 90}{i:06d}" for i in range(10_000)]  # about 1 MB of filters per endpoint
    _add_endpoints(shop.rt, noisy_id, 40, huge)
    rows_beside, statements_beside = _checkout_reads(shop)

    assert rows_beside == rows_alone == [1]
    assert statements_beside == statements_alone
    with shop.rt.db.session() as session:
        assert (
            session.scalar(select(func.count()).select_from(Delivery)) == 3
        )  # one per order, to its own endpoint
