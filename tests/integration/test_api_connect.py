"""`POST /v1/merchants/walmart`: a platform client connects a Walmart seller (the emulator) with its keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra import runtime
from connector.infra.models import Merchant, SyncRun
from connector.sandbox.walmart import serve
from connector.sandbox.walmart.app import Server
from tests.integration.api_support import build_app, make_client

CLIENT_ID = "wm-sandbox-client"
SECRET = "wm-sandbox-secret"


@pytest.fixture
def walmart() -> Iterator[Server]:
    with serve(client_id=CLIENT_ID, client_secret=SECRET) as server:
        server.store.seed_catalog(3)
        server.store.add_channel("Video commerce", channel_id="VIDEO1")
        yield server


@pytest.fixture
def settings(settings: Settings, walmart: Server, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("WALMART_BASE_URL", walmart.url)  # the setting the Walmart adapter declares
    return settings.model_copy(update={"public_url": ""})


def _body(**changes: object) -> dict[str, object]:
    return {
        "name": "acme-wm",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "seller_id": "S100",
        **changes,
    }


def _count(rt: runtime.Runtime) -> int:
    with rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Merchant)) or 0)


def test_a_client_connects_a_seller_that_then_is_its_own(rt: runtime.Runtime, walmart: Server) -> None:
    client_id, auth = make_client(rt, "platform")
    _, other = make_client(rt, "other-platform")
    http = build_app(rt).test_client()

    answer = http.post("/v1/merchants/walmart", json=_body(), headers=auth)

    assert answer.status_code == 201, answer.get_data(as_text=True)
    made = answer.get_json()
    assert made["kind"] == "walmart" and made["store_ref"] == "S100" and made["status"] == "installed"
    assert made["mcs_enrolled"] is True and made["order_channel_id"] == "VIDEO1"
    assert any("PUBLIC_URL" in warning for warning in made["warnings"])  # no address to subscribe
    assert SECRET not in answer.get_data(as_text=True)
    with rt.db.session() as session:
        merchant = session.get(Merchant, made["id"])
        assert merchant is not None and merchant.platform_client_id == client_id
        assert SECRET.encode() not in (merchant.credentials_encrypted or b"")
        assert rt.secrets.decrypt(merchant.credentials_encrypted)["client_secret"] == SECRET
        assert session.get(SyncRun, made["sync_run_id"]) is not None  # the first sync is queued
    assert [m["id"] for m in http.get("/v1/merchants", headers=auth).get_json()["data"]] == [made["id"]]
    assert http.get("/v1/merchants", headers=other).get_json()["data"] == []

    again = http.post("/v1/merchants/walmart", json=_body(name="acme-2"), headers=auth)
    assert again.status_code == 422 and again.get_json()["code"] == "merchant_exists"


def test_refused_keys_and_bad_bodies_are_4xx_and_write_nothing(rt: runtime.Runtime, walmart: Server) -> None:
    _, auth = make_client(rt, "platform")
    http = build_app(rt).test_client()

    refused = http.post("/v1/merchants/walmart", json=_body(client_secret="not-it"), headers=auth)
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == "store_credentials_refused"
    for bad in (
        _body(base_url="http://169.254.169.254"),  # the server picks Walmart's address, never the caller
        _body(client_secret=""),
        _body(environment="staging"),
        _body(inventory_buffer=-1),
        {"name": "x"},
    ):
        answer = http.post("/v1/merchants/walmart", json=bad, headers=auth)
        assert answer.status_code == 422 and answer.get_json()["code"] == "invalid_request", bad
    assert http.post("/v1/merchants/walmart", json=_body()).status_code == 401
    assert _count(rt) == 0


def test_the_generic_endpoint_takes_the_kind_in_the_body(rt: runtime.Runtime, walmart: Server) -> None:
    _, auth = make_client(rt, "platform")
    http = build_app(rt).test_client()

    bad = http.post("/v1/merchants", json={"kind": "walmart", **_body(environment="staging")}, headers=auth)
    assert bad.status_code == 422 and bad.get_json()["code"] == "invalid_request"  # Walmart's own schema
    assert _count(rt) == 0

    answer = http.post("/v1/merchants", json={"kind": "walmart", **_body()}, headers=auth)

    assert answer.status_code == 201, answer.get_data(as_text=True)
    made = answer.get_json()
    assert made["kind"] == "walmart" and made["store_ref"] == "S100"
    assert made["mcs_enrolled"] is True and made["order_channel_id"] == "VIDEO1"
