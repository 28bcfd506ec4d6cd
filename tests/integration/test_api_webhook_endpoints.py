"""The `/v1/webhook-endpoints` Platform API over HTTP: authentication, scoping, validation, deliveries, replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.api import common
from connector.infra import runtime
from connector.infra.models import Delivery, DeliveryAttempt, EventPayload, WebhookEndpoint
from connector.infra.queue import EVENTS
from connector.merchants import clients
from tests.helpers import ApiClient, assert_problem, build_app, make_client
from webhooks.outbound import scheduling

Runtime = runtime.Runtime
PUBLIC_URL = "https://93.184.215.14/hooks"


@pytest.fixture
def auth(api_client: ApiClient) -> dict[str, str]:
    return api_client.headers


def create(client: FlaskClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/v1/webhook-endpoints", json={"url": PUBLIC_URL, **body}, headers=auth)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


# --- authentication ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sl_live_" + "x" * 32},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
)
def test_requests_without_a_valid_key_are_401(
    client: FlaskClient, auth: dict[str, str], headers: dict[str, str]
) -> None:
    for method, path in [
        ("get", "/v1/webhook-endpoints"),
        ("post", "/v1/webhook-endpoints"),
        ("delete", "/v1/webhook-endpoints/1"),
    ]:
        response = getattr(client, method)(path, headers=headers, json={"url": PUBLIC_URL})
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_deactivated_client_is_refused(rt: Runtime, client: FlaskClient) -> None:
    with rt.db.session() as session:
        platform, key = clients.create_client(session, "gone")
        clients.deactivate(session, platform.id)
    response = client.get("/v1/webhook-endpoints", headers={"Authorization": f"Bearer {key}"})
    assert_problem(response, 401, "unauthorized")


# --- happy paths ------------------------------------------------------------------------------------------


def test_create_list_get_patch_delete(rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    created = create(client, auth, event_types=["order.*", "product.updated"])
    assert created["secret"].startswith("whsec_")
    assert set(created) == {
        "id",
        "url",
        "event_types",
        "enabled",
        "disabled_reason",
        "created_at",
        "updated_at",
        "secret",
    }
    assert created["url"] == PUBLIC_URL and created["event_types"] == ["order.*", "product.updated"]
    assert created["enabled"] is True and created["disabled_reason"] is None
    endpoint_id = created["id"]

    default = create(client, auth)
    assert default["event_types"] == ["*"]

    listed = client.get("/v1/webhook-endpoints", headers=auth)
    assert listed.status_code == 200
    assert [e["id"] for e in listed.get_json()["data"]] == [endpoint_id, default["id"]]
    assert all("secret" not in e for e in listed.get_json()["data"])

    got = client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth)
    assert got.status_code == 200
    assert "secret" not in got.get_json() and got.get_json()["url"] == PUBLIC_URL

    patched = client.patch(
        f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": False, "event_types": ["*"]}, headers=auth
    )
    assert patched.status_code == 200
    body = patched.get_json()
    assert body["enabled"] is False and body["disabled_reason"] and body["event_types"] == ["*"]
    reenabled = client.patch(f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": True}, headers=auth)
    assert reenabled.get_json()["enabled"] is True and reenabled.get_json()["disabled_reason"] is None

    deleted = client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth)
    assert deleted.status_code == 204 and deleted.data == b""
    assert_problem(
        client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth), 404, "endpoint_not_found"
    )
    with rt.db.session() as session:
        assert session.get(WebhookEndpoint, endpoint_id) is None


def test_rotate_secret(rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    created = create(client, auth)
    path = f"/v1/webhook-endpoints/{created['id']}/rotate-secret"
    rotated = client.post(path, headers=auth)
    assert rotated.status_code == 200
    first = rotated.get_json()
    assert first["secret"].startswith("whsec_") and first["secret"] != created["secret"]
    expires = datetime.fromisoformat(first["previous_secret_expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)

    again = client.post(path, json={"grace_seconds": 0}, headers=auth)
    assert again.status_code == 200 and again.get_json()["secret"] != first["secret"]
    with rt.db.session() as session:
        endpoint = session.get(WebhookEndpoint, created["id"])
        assert endpoint is not None
        assert rt.secrets.decrypt_text(endpoint.secret_encrypted) == again.get_json()["secret"]

    too_long = client.post(path, json={"grace_seconds": 7 * 24 * 3600 + 1}, headers=auth)
    assert assert_problem(too_long, 422, "invalid_request")["errors"][0]["field"] == "grace_seconds"
    with rt.db.session() as session:
        endpoint = session.get(WebhookEndpoint, created["id"])
        assert endpoint is not None
        assert rt.secrets.decrypt_text(endpoint.secret_encrypted) == again.get_json()["secret"]


def test_clients_see_only_their_own_endpoints(rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    other = make_client(rt, "platform-b").headers
    mine = create(client, auth)
    path = f"/v1/webhook-endpoints/{mine['id']}"
    assert client.get("/v1/webhook-endpoints", headers=other).get_json() == {"data": []}
    assert_problem(client.get(path, headers=other), 404, "endpoint_not_found")
    assert_problem(client.patch(path, json={"enabled": False}, headers=other), 404, "endpoint_not_found")
    assert_problem(client.delete(path, headers=other), 404, "endpoint_not_found")
    assert_problem(client.post(f"{path}/rotate-secret", headers=other), 404, "endpoint_not_found")
    assert_problem(client.get(f"{path}/deliveries", headers=other), 404, "endpoint_not_found")
    assert_problem(client.post(f"{path}/replay-failed", headers=other), 404, "endpoint_not_found")
    assert_problem(client.post(f"{path}/deliveries/1/replay", headers=other), 404, "endpoint_not_found")
    still = client.get(path, headers=auth)
    assert still.status_code == 200 and still.get_json()["enabled"] is True


# --- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://93.184.215.14/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://10.0.0.8/hooks"}, "url"),
        ({"url": "http://127.0.0.1:8080/hooks"}, "url"),
        ({"url": "https://" + "a" * 64 + ".example/"}, "url"),
        ({"url": 42}, "url"),
        ({}, "url"),
        ({"url": PUBLIC_URL, "event_types": "order.*"}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": [1]}, "event_types.0"),
        ({"url": PUBLIC_URL, "event_types": ["Not A Type"]}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": []}, "event_types"),
        ({"url": PUBLIC_URL, "secret": "mine"}, "secret"),
    ],
)
def test_invalid_bodies_are_422(
    rt: Runtime, client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/webhook-endpoints", json=body, headers=auth)
    problem = assert_problem(response, 422, "invalid_request")
    assert field in [error["field"] for error in problem["errors"]]
    assert all(error["message"] for error in problem["errors"])
    with rt.db.session() as session:
        assert session.query(WebhookEndpoint).count() == 0


def test_patch_validation_writes_nothing(rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    created = create(client, auth)
    path = f"/v1/webhook-endpoints/{created['id']}"
    for body, field in [
        ({"enabled": "false"}, "enabled"),
        ({"enabled": 0}, "enabled"),
        ({"colour": "red"}, "colour"),
        ({"event_types": ["order.*"], "url": "https://192.168.1.1/"}, "url"),
    ]:
        problem = assert_problem(client.patch(path, json=body, headers=auth), 422, "invalid_request")
        assert field in [error["field"] for error in problem["errors"]]
    unchanged = client.get(path, headers=auth).get_json()
    assert unchanged["event_types"] == ["*"] and unchanged["url"] == PUBLIC_URL and unchanged["enabled"]


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"[" * 5000])
def test_malformed_json_is_422(client: FlaskClient, auth: dict[str, str], data: bytes) -> None:
    response = client.post(
        "/v1/webhook-endpoints", data=data, headers={**auth, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["errors"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(
    client: FlaskClient, auth: dict[str, str], content_type: str | None
) -> None:
    headers = dict(auth)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/v1/webhook-endpoints", data=json.dumps({"url": PUBLIC_URL}), headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


def test_private_urls_allowed_when_the_setting_is_on(rt: Runtime, auth: dict[str, str]) -> None:
    private = Runtime(
        settings=rt.settings.model_copy(update={"webhook_allow_private_urls": True}), redis_url=rt.redis_url
    )
    try:
        client = build_app(private).test_client()
        response = client.post(
            "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:8080/hooks"}, headers=auth
        )
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["url"] == "http://127.0.0.1:8080/hooks"
    finally:
        private.close()


# --- deliveries and replay -------------------------------------------------------------------------------


def add_deliveries(rt: Runtime, endpoint_id: int, statuses: list[str]) -> list[int]:
    ids = []
    with rt.db.session() as session:
        for index, status in enumerate(statuses):
            payload = EventPayload(
                id=f"msg_test{endpoint_id}x{index}", type="order.confirmed", data={"n": index}
            )
            session.add(payload)
            session.flush()
            delivery = Delivery(
                payload_id=payload.id,
                endpoint_id=endpoint_id,
                status=status,
                attempt_count=0 if status == "pending" else 1,
                next_attempt_at=None,
                last_status_code=500 if status == "failed" else 200,
                last_error="HTTP 500" if status == "failed" else None,
            )
            session.add(delivery)
            session.flush()
            if status != "pending":
                session.add(DeliveryAttempt(delivery_id=delivery.id, status_code=delivery.last_status_code))
            ids.append(delivery.id)
    return ids


def test_delivery_listing_paginates(rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    endpoint = create(client, auth)
    statuses = ["failed", "succeeded", "pending"] * 4
    ids = add_deliveries(rt, endpoint["id"], statuses)
    path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 5}
        if cursor:
            query["cursor"] = cursor
        response = client.get(path, query_string=query, headers=auth)
        assert response.status_code == 200
        page = response.get_json()
        assert len(page["data"]) <= 5
        seen.extend(item["id"] for item in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(ids, reverse=True)

    first = client.get(path, headers=auth).get_json()["data"][-1]
    assert first["id"] == ids[0] and first["status"] == "failed"
    assert (
        first["attempts"] == 1
        and first["last_status_code"] == 500
        and first["event_type"] == "order.confirmed"
    )

    failed = client.get(path, query_string={"status": "failed"}, headers=auth).get_json()
    assert [item["id"] for item in failed["data"]] == [
        i for i, s in zip(ids, statuses, strict=True) if s == "failed"
    ][::-1]
    assert failed["next_cursor"] is None
    by_type = client.get(path, query_string={"event_type": "order.confirmed"}, headers=auth).get_json()
    assert len(by_type["data"]) == 12
    other_type = client.get(path, query_string={"event_type": "order.cancelled"}, headers=auth).get_json()
    assert other_type == {"data": [], "next_cursor": None}

    for query, field in [
        ({"event_type": "Order Confirmed"}, "event_type"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "ZDp4"}, "cursor"),
    ]:
        problem = assert_problem(client.get(path, query_string=query, headers=auth), 422, "invalid_request")
        assert problem["errors"][0]["field"] == field


def test_delivery_listing_follows_the_shared_api_conventions(
    rt: Runtime, client: FlaskClient, auth: dict[str, str]
) -> None:
    """Cursors, query checks and the documented parameters are the ones every `/v1` listing uses."""
    endpoint = create(client, auth)
    ids = add_deliveries(rt, endpoint["id"], ["failed", "succeeded", "pending"])
    path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
    page = client.get(path, query_string={"limit": 2}, headers=auth).get_json()
    assert common.decode_id_cursor("deliveries", page["next_cursor"]) == ids[1]
    products_cursor = common.encode_cursor("products", [ids[1]])
    refused = client.get(path, query_string={"cursor": products_cursor}, headers=auth)
    assert assert_problem(refused, 422, "invalid_request")["errors"][0]["field"] == "cursor"
    empty = client.get(path, query_string={"status": "", "event_type": "", "cursor": ""}, headers=auth)
    assert [item["id"] for item in empty.get_json()["data"]] == ids[::-1]

    document = client.get("/v1/openapi.json").get_json()
    operation = document["paths"]["/v1/webhook-endpoints/{endpoint_id}/deliveries"]["get"]
    schemas = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert schemas["status"]["enum"] == ["pending", "succeeded", "failed"]
    assert "pattern" in schemas["event_type"] and "pattern" in schemas["cursor"]


def test_webhook_routes_share_the_api_key_cache(rt: Runtime, auth: dict[str, str]) -> None:
    app = build_app(rt)
    key = auth["Authorization"].removeprefix("Bearer ")
    assert app.test_client().get("/v1/webhook-endpoints", headers=auth).status_code == 200
    cached = common.key_cache(app).get(clients.hash_key(key), clients.key_generation(rt.redis))
    assert cached is not None and cached.name == "platform-a"


def test_replay_of_a_failed_delivery(rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    endpoint = create(client, auth)
    other_endpoint = create(client, auth)
    failed, succeeded, _pending = add_deliveries(rt, endpoint["id"], ["failed", "succeeded", "pending"])
    base = f"/v1/webhook-endpoints/{endpoint['id']}"

    response = client.post(f"{base}/deliveries/{failed}/replay", headers=auth)
    assert response.status_code == 202 and response.get_json() == {"replayed": [failed]}
    with rt.db.session() as session:
        delivery = session.get(Delivery, failed)
        assert delivery is not None and delivery.status == "pending" and delivery.attempt_count == 0
    # After the commit, the endpoint's dispatcher was woken to send it.
    assert scheduling.dispatching_endpoints(rt.redis, [endpoint["id"]]) == {endpoint["id"]}
    assert [(j.func_name, j.args[0]) for j in rt.queues[EVENTS].jobs] == [
        (scheduling.DISPATCH_FUNC, endpoint["id"])
    ]

    assert_problem(
        client.post(f"{base}/deliveries/{succeeded}/replay", headers=auth), 409, "delivery_not_failed"
    )
    assert_problem(
        client.post(f"/v1/webhook-endpoints/{other_endpoint['id']}/deliveries/{failed}/replay", headers=auth),
        404,
        "delivery_not_found",
    )
    assert_problem(client.post(f"{base}/deliveries/999999/replay", headers=auth), 404, "delivery_not_found")


def test_replay_failed_replays_only_that_endpoints_failures(
    rt: Runtime, client: FlaskClient, auth: dict[str, str]
) -> None:
    endpoint = create(client, auth)
    other = create(client, auth)
    mine = add_deliveries(rt, endpoint["id"], ["failed", "succeeded", "failed"])
    theirs = add_deliveries(rt, other["id"], ["failed"])
    response = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay-failed", headers=auth)
    assert response.status_code == 202
    assert response.get_json() == {"replayed": [mine[0], mine[2]]}
    with rt.db.session() as session:
        untouched = session.get(Delivery, theirs[0])
        assert untouched is not None and untouched.status == "failed"
    again = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/replay-failed", headers=auth)
    assert again.status_code == 202 and again.get_json() == {"replayed": []}


# --- property: no input makes the server fail -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
urls = st.sampled_from(
    [
        PUBLIC_URL,
        "https://10.0.0.1/x",
        "http://127.0.0.1/x",
        "https://[::1]/x",
        "https://93.184.215.14:99999/",
        "https://user:pw@93.184.215.14/",
        "https://93.184.215.14/\x00",
        "https://93.184.215.14/\udcff",
        "https://\udcff/",
        "https://./",
        "",
    ]
) | st.text(max_size=40)
event_types = st.lists(
    st.sampled_from(["*", "order.*", "a.b", "", "Bad", "x.*.*"]) | st.text(max_size=12), max_size=4
)
bodies = (
    st.fixed_dictionaries({}, optional={"url": urls | json_values, "event_types": event_types | json_values})
    | st.dictionaries(st.text(max_size=10), json_values, max_size=3)
    | json_values
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_arbitrary_json_bodies_never_cause_a_5xx(
    client: FlaskClient, auth: dict[str, str], body: Any
) -> None:
    response = client.post(
        "/v1/webhook-endpoints",
        data=json.dumps(body),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code != 201:
        assert response.mimetype == "application/problem+json"
