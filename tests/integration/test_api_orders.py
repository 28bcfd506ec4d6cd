"""Orders and live-session endpoints under bad input (property-based: always a 4xx problem document, never a
5xx), the purchase path's cost when it refuses, one source of truth for held stock, and regressions."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update

from connector.catalog import levels
from connector.infra import addresses, runtime
from connector.infra.models import Delivery, EventPayload, InventoryLevel, Merchant, Reservation, Variant
from connector.stock import rebuild
from tests.integration.checkout_support import (
    Shop,
    assert_problem,
    live_pin,
    make_shop,
    order_body,
    post_order,
)

Runtime = runtime.Runtime
PRICE = 1_000
FLASH = 700

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(50, 5), prices=(PRICE, PRICE))


@pytest.fixture
def http(shop: Shop) -> FlaskClient:
    return shop.http()


@pytest.fixture
def live_session(shop: Shop) -> int:
    """A live session on sale with the first variant pinned (3 units, 2 per buyer)."""
    return _live(shop, allocation=3, limit=2)[0]


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", record)


def _live(shop: Shop, *, allocation: int = 3, limit: int | None = None) -> tuple[int, int]:
    """A live session with the first variant pinned; (session id, pin id)."""
    return live_pin(shop, flash=FLASH, allocation=allocation, limit=limit)


def _live_body(shop: Shop, session_id: int, buyer: str = "b-1") -> dict[str, Any]:
    return order_body(shop.variants[0], FLASH, buyer={"ref": buyer}, live_session_id=session_id)


def _client_problem(response: Any) -> None:
    """Anything but success is a 4xx problem document; never a 5xx."""
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
        body = response.get_json()
        assert body["status"] == response.status_code and isinstance(body["code"], str)


# --- regressions ----------------------------------------------------------------------------------------------


def test_an_order_is_accepted_while_a_client_scoped_webhook_endpoint_exists(
    shop: Shop, http: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was a 500 (`'ChunkedIteratorResult' object is not subscriptable`): publishing `order.accepted` fanned
    out to endpoints scoped to a platform client, and the fan-out built its merchant map with `dict()` over a
    SQLAlchemy result."""
    monkeypatch.setattr(addresses, "resolve", lambda host, port: [ipaddress.ip_address("93.184.215.14")])
    created = http.post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"}, headers=shop.auth
    )
    assert created.status_code == 201, created.get_json()

    response = post_order(http, shop.auth, order_body(shop.variants[0], PRICE), key="k-1")

    assert response.status_code == 201, response.get_data(as_text=True)
    with shop.rt.db.session() as session:
        delivered = session.execute(
            select(EventPayload.type).join(Delivery, Delivery.payload_id == EventPayload.id)
        ).all()
    assert [row.type for row in delivered] == ["order.accepted"]
    # the body of the report, with its key, is an ordinary refusal
    odd = {
        "lines": [{"quantity": 1, "unit_price_minor": 348, "variant_id": shop.variants[0]}],
        "currency": "AAA",
    }
    assert_problem(post_order(http, shop.auth, odd, key="k-2"), 422, "currency_mismatch")


# --- the purchase path -------------------------------------------------------------------------------------------


def test_a_refused_live_purchase_reads_and_writes_no_database(
    shop: Shop, http: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    session_id, _pin = _live(shop, allocation=2, limit=1)
    assert post_order(http, shop.auth, _live_body(shop, session_id, "b-1")).status_code == 201
    assert post_order(http, shop.auth, _live_body(shop, session_id, "b-2")).status_code == 201

    caplog.set_level(logging.INFO, logger="connector.web.context")
    caplog.clear()
    with statements(shop.rt) as seen:
        over_limit = post_order(http, shop.auth, _live_body(shop, session_id, "b-1"))
        sold_out = post_order(http, shop.auth, _live_body(shop, session_id, "b-3"))

    assert_problem(over_limit, 409, "buyer_limit_exceeded")
    assert_problem(sold_out, 409, "sold_out")
    assert seen == []  # key and pin from the in-process caches, the refusal from the Lua script
    # a flash sale refuses by the thousand: no access line at INFO for these (metrics count them)
    assert [r for r in caplog.records if r.getMessage() == "request" and r.levelno >= logging.INFO] == []


# --- one source of truth for held stock ---------------------------------------------------------------------------


def test_catalog_sync_events_and_checkout_count_the_same_holds(shop: Shop, http: FlaskClient) -> None:
    """Active holds (a pin's allocation and its orders included once), and confirmed holds until the store's
    level has caught up, are counted alike by the catalog API, `levels.reserved_by_variant` (catalog sync,
    stock events) and checkout's counter rebuild."""
    rt = shop.rt
    variant_id = shop.variants[0]
    session_id, _pin = _live(shop, allocation=6)
    assert post_order(http, shop.auth, _live_body(shop, session_id)).status_code == 201  # 1 of the 6
    assert post_order(http, shop.auth, order_body(variant_id, PRICE, quantity=2)).status_code == 201
    level_at = datetime.now(UTC)
    with rt.db.session() as session:
        session.execute(
            update(InventoryLevel)
            .where(InventoryLevel.variant_id == variant_id)
            .values(available=50, updated_at=level_at, source_updated_at=level_at)
        )
        merchant = shop.merchant_id
        session.add_all(
            [  # confirmed before the level was written: the level reflects it (not held)
                _hold(merchant, variant_id, "caught-up", 4, "confirmed", level_at - timedelta(minutes=5)),
                # confirmed after: the store has not said its stock went down yet (held)
                _hold(merchant, variant_id, "pending", 3, "confirmed", level_at + timedelta(minutes=1)),
                # settled: never again
                _hold(merchant, variant_id, "settled", 5, "confirmed", level_at + timedelta(minutes=1), True),
                _hold(merchant, variant_id, "released", 7, "released", level_at),
            ]
        )
    held = 6 + 2 + 3  # the allocation (5 unsold + 1 sold), the regular order, the pending confirmation

    with rt.db.session() as session:
        assert levels.reserved_by_variant(session, [variant_id, shop.variants[1]]) == {variant_id: held}
        assert rebuild.held_by_variant(session, [variant_id]) == {variant_id: held}
        variant = session.get(Variant, variant_id)
        assert variant is not None
        owner = session.get(Merchant, merchant)
        assert owner is not None
        assert rebuild.variant_state(session, variant, owner).remaining == 50 - held
    assert http.get(f"/v1/variants/{variant_id}", headers=shop.auth).get_json()["sellable"] == 50 - held


def test_held_stock_of_a_batch_is_one_query(shop: Shop) -> None:
    with shop.rt.db.session() as session, statements(shop.rt) as seen:
        levels.reserved_by_variant(session, list(range(1, 2_000)))
    assert [text for text in seen if text.lstrip().upper().startswith("SELECT")] == seen[-1:]


def _hold(
    merchant_id: int,
    variant_id: int,
    name: str,
    quantity: int,
    state: str,
    at: datetime,
    settled: bool = False,
) -> Reservation:
    return Reservation(
        id=f"rsv_test_{name}",
        merchant_id=merchant_id,
        variant_id=variant_id,
        quantity=quantity,
        state=state,
        created_at=at,
        updated_at=at,
        settled_at=at if settled else None,
    )


# --- robustness: bad input on every orders and live-session endpoint ----------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_number = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2**63, -1]),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
)
_line = st.fixed_dictionaries(
    {},
    optional={"variant_id": _number, "quantity": _number, "unit_price_minor": _number, "extra": _json},
)
_order = st.fixed_dictionaries(
    {},
    optional={
        "lines": st.one_of(st.lists(_line, max_size=3), _json),
        "currency": st.one_of(st.sampled_from(["USD", "usd", "AAA", ""]), _json),
        "buyer": st.one_of(st.fixed_dictionaries({}, optional={"ref": _json, "email": _json}), _json),
        "shipping_address": _json,
        "platform_order_id": _json,
        "live_session_id": _number,
    },
)
_key = st.one_of(st.none(), st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=300))


def _headers(shop: Shop, key: str | None) -> dict[str, str]:
    headers = dict(shop.auth)
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _send(http: FlaskClient, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    if isinstance(body, bytes):
        return http.open(path, method=method, data=body, headers=headers, content_type="application/json")
    return http.open(
        path, method=method, data=json.dumps(body), headers=headers, content_type="application/json"
    )


@_SETTINGS
@given(body=st.one_of(_order, _json, st.binary(max_size=40)), key=_key)
def test_no_order_body_or_key_causes_a_5xx(shop: Shop, http: FlaskClient, body: Any, key: str | None) -> None:
    _client_problem(_send(http, "POST", "/v1/orders", _headers(shop, key), body))


@_SETTINGS
@given(
    tail=st.text(max_size=45).filter(lambda t: not any(c in t for c in "/?#")),
    body=st.one_of(st.none(), _json, st.binary(max_size=30)),
    query=st.dictionaries(
        st.sampled_from(["status", "merchant_id", "live_session_id", "created_from", "cursor", "limit"]),
        st.text(max_size=30),
        max_size=3,
    ),
)
def test_no_order_id_query_or_cancel_body_causes_a_5xx(
    shop: Shop, http: FlaskClient, tail: str, body: Any, query: dict[str, str]
) -> None:
    _client_problem(http.get(f"/v1/orders/{tail}", headers=shop.auth))
    _client_problem(http.get("/v1/orders", headers=shop.auth, query_string=query))
    if body is None:
        _client_problem(http.post(f"/v1/orders/{tail}/cancel", headers=shop.auth))
    else:
        _client_problem(_send(http, "POST", f"/v1/orders/{tail}/cancel", shop.auth, body))


_session_body = st.fixed_dictionaries(
    {},
    optional={
        "merchant_id": _number,
        "title": _json,
        "creator_ref": _json,
        "scheduled_start": st.one_of(st.datetimes().map(datetime.isoformat), _json),
    },
)
_pin_body = st.fixed_dictionaries(
    {},
    optional={
        "variant_id": _number,
        "flash_price_minor": _number,
        "allocation": _number,
        "per_buyer_limit": _number,
        "countdown_seconds": _number,
        "low_stock_threshold": _number,
    },
)
_id = st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=12)).filter(
    lambda t: not any(c in t for c in "/?#")
)


@_SETTINGS
@given(
    session_body=st.one_of(_session_body, _json, st.binary(max_size=30)),
    pin_body=st.one_of(_pin_body, _json, st.binary(max_size=30)),
    session_tail=_id,
    pin_tail=_id,
    action=st.sampled_from(["start", "end"]),
)
def test_no_live_session_or_pin_input_causes_a_5xx(
    shop: Shop,
    http: FlaskClient,
    session_body: Any,
    pin_body: Any,
    session_tail: str,
    pin_tail: str,
    action: str,
) -> None:
    _client_problem(_send(http, "POST", "/v1/live-sessions", shop.auth, session_body))
    base = f"/v1/live-sessions/{session_tail}"
    _client_problem(http.get(base, headers=shop.auth))
    _client_problem(_send(http, "POST", f"{base}/pins", shop.auth, pin_body))
    _client_problem(http.get(f"{base}/pins", headers=shop.auth))
    _client_problem(http.get(f"{base}/pins/{pin_tail}", headers=shop.auth))
    _client_problem(http.post(f"{base}/{action}", headers=shop.auth))
    _client_problem(http.post(f"{base}/pins/{pin_tail}/end", headers=shop.auth))
    _client_problem(http.delete(f"{base}/pins/{pin_tail}", headers=shop.auth))


@_SETTINGS
@given(pin_body=st.one_of(_pin_body, _json), order=_order, key=_key)
def test_no_pin_or_live_purchase_input_on_a_real_session_causes_a_5xx(
    shop: Shop, http: FlaskClient, live_session: int, pin_body: Any, order: dict[str, Any], key: str | None
) -> None:
    session_id = live_session
    _client_problem(_send(http, "POST", f"/v1/live-sessions/{session_id}/pins", shop.auth, pin_body))
    purchase = {**order, "live_session_id": session_id} if isinstance(order, dict) else order
    _client_problem(_send(http, "POST", "/v1/orders", _headers(shop, key), purchase))
