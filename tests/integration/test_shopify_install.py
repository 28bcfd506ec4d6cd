"""Shopify install through the real redirect flow against the emulator, and expiring-token rotation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from pydantic import SecretStr
from rq.job import Job
from sqlalchemy import func, select

from adapters.shopify import const
from config.settings import Settings
from connector.app import create_app
from connector.catalog import syncs
from connector.domain.errors import AuthError
from connector.infra.models import InboundEvent, Merchant, Product, SyncRun, Variant
from connector.infra.runtime import Runtime
from connector.infra.store_adapters import build_adapter
from connector.sandbox.shopify import Server, query_hmac, serve, sign
from tests.helpers import drain

SHOP = "storelink-demo.myshopify.com"
PUBLIC_URL = "http://storelink.test"
PRODUCTS, VARIANTS_EACH = 12, 2


@pytest.fixture
def shopify() -> Iterator[Server]:
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(PRODUCTS, VARIANTS_EACH)
        yield server


@pytest.fixture
def settings(settings: Settings, shopify: Server) -> Settings:
    app = shopify.emulator.client
    return settings.model_copy(
        update={
            "shopify_api_key": app.client_id,
            "shopify_api_secret": SecretStr(app.client_secret),
            "shopify_admin_base_url": shopify.url,
            "public_url": PUBLIC_URL,
        }
    )


def _grant(client: FlaskClient, shopify: Server, *, drop_scope: str | None = None) -> dict[str, str]:
    """Start the install, follow the redirect to the emulator's grant page and return the callback query."""
    started = client.get(f"/shopify/install?shop={SHOP}")
    assert started.status_code == 302, started.get_data(as_text=True)
    authorize = started.headers["Location"]
    assert authorize.startswith(f"{shopify.url}/admin/oauth/authorize?")
    if drop_scope is not None:  # the merchant is shown fewer scopes than the app needs
        parts = urlsplit(authorize)
        query = dict(parse_qsl(parts.query))
        query["scope"] = ",".join(s for s in query["scope"].split(",") if s != drop_scope)
        authorize = f"{shopify.url}{parts.path}?{urlencode(query)}"
    back = requests.get(authorize, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{PUBLIC_URL}/shopify/callback"
    return dict(parse_qsl(callback.query))


def _callback(client: FlaskClient, params: dict[str, str]) -> Any:
    return client.get(f"/shopify/callback?{urlencode(params)}")


def _resigned(params: dict[str, str], secret: str, **changes: str) -> dict[str, str]:
    changed = {key: value for key, value in {**params, **changes}.items() if key != "hmac"}
    return {**changed, "hmac": query_hmac(changed, secret)}


def _merchant(rt: Runtime) -> Merchant:
    with rt.db.session() as session:
        merchant = session.scalars(select(Merchant).where(Merchant.store_ref == SHOP)).one()
        session.expunge(merchant)
        return merchant


def _count(rt: Runtime, model: type) -> int:
    with rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _nothing_written(rt: Runtime, shopify: Server) -> None:
    assert _count(rt, Merchant) == 0
    assert _count(rt, SyncRun) == 0
    assert shopify.store.subscriptions == {}
    assert rt.queues["bulk"].count == 0


def _installed(client: FlaskClient, shopify: Server) -> dict[str, Any]:
    answer = _callback(client, _grant(client, shopify))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.get_json()
    return body


def test_install_stores_encrypted_tokens_subscribes_and_syncs_the_catalog(client, shopify, rt):
    before = datetime.now(UTC)
    body = _installed(client, shopify)

    assert body["store_ref"] == SHOP and body["created"] is True
    assert body["webhook_topics"] == list(const.WEBHOOK_TOPICS)
    merchant = _merchant(rt)
    assert (merchant.id, merchant.kind, merchant.status) == (body["merchant_id"], "shopify", "installed")
    assert merchant.config["shop"] == SHOP and merchant.config["base_url"] == shopify.url
    credentials = rt.secrets.decrypt(merchant.credentials_encrypted)
    assert credentials["access_token"].startswith("shpat_")
    assert credentials["refresh_token"].startswith("shprt_")
    assert credentials["client_id"] == shopify.emulator.client.client_id
    for secret in (credentials["access_token"], credentials["refresh_token"], credentials["client_secret"]):
        assert secret.encode() not in (merchant.credentials_encrypted or b"")
    expires = datetime.fromisoformat(credentials["access_token_expires_at"])
    refresh_expires = datetime.fromisoformat(credentials["refresh_token_expires_at"])
    assert before + timedelta(minutes=59) < expires < before + timedelta(minutes=61)
    assert before + timedelta(days=89) < refresh_expires < before + timedelta(days=91)
    assert shopify.emulator.oauth.check(credentials["access_token"])

    subscriptions = list(shopify.store.subscriptions.values())
    assert sorted(s.topic for s in subscriptions) == sorted(
        t.upper().replace("/", "_") for t in const.WEBHOOK_TOPICS
    )
    assert {s.uri for s in subscriptions} == {f"{PUBLIC_URL}/webhooks/shopify"}

    run = syncs.get_run(rt, body["sync_run_id"])
    assert (run.status, run.full, run.queue) == ("queued", True, "bulk")
    assert run.job_id is not None and rt.queues.is_live(run.job_id)
    drain(rt)
    run = syncs.get_run(rt, run.id)
    assert run.status == "succeeded", run.error
    assert _count(rt, Product) == PRODUCTS and _count(rt, Variant) == PRODUCTS * VARIANTS_EACH
    assert shopify.store.bulk_operations  # the first full sync was a bulk export


def test_a_reinstall_replaces_the_tokens_of_the_same_merchant(client, shopify, rt):
    first = _installed(client, shopify)
    drain(rt)
    with rt.db.session() as session:
        syncs.pause_merchant(session, first["merchant_id"], "store refused credentials")
    old = rt.secrets.decrypt(_merchant(rt).credentials_encrypted)

    answer = _callback(client, _grant(client, shopify))

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["merchant_id"] == first["merchant_id"] and answer.get_json()["created"] is False
    merchant = _merchant(rt)
    assert (merchant.status, merchant.problem) == ("installed", None)
    new = rt.secrets.decrypt(merchant.credentials_encrypted)
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert _count(rt, Merchant) == 1 and len(shopify.store.subscriptions) == len(const.WEBHOOK_TOPICS)


def test_a_replayed_callback_is_refused(client, shopify, rt):
    params = _grant(client, shopify)
    assert _callback(client, params).status_code == 201
    before = _merchant(rt).credentials_encrypted

    again = _callback(client, params)

    assert again.status_code == 400 and again.get_json()["code"] == "invalid_state"
    assert again.mimetype == "application/problem+json"
    assert _merchant(rt).credentials_encrypted == before and _count(rt, SyncRun) == 1


def test_a_bad_hmac_is_refused_and_nothing_is_written(client, shopify, rt):
    params = _grant(client, shopify)
    tampered = {**params, "hmac": "0" * 64}

    answer = _callback(client, tampered)

    assert answer.status_code == 403 and answer.get_json()["code"] == "invalid_hmac"
    _nothing_written(rt, shopify)
    code_unused = shopify.emulator.oauth._codes
    assert params["code"] in code_unused  # never exchanged


def test_an_unknown_state_is_refused_and_nothing_is_written(client, shopify, rt):
    params = _grant(client, shopify)
    forged = _resigned(params, shopify.emulator.client.client_secret, state="forged-state")

    answer = _callback(client, forged)

    assert answer.status_code == 400 and answer.get_json()["code"] == "invalid_state"
    _nothing_written(rt, shopify)


def test_a_state_is_good_only_for_the_shop_it_was_issued_for(client, shopify, rt):
    params = _grant(client, shopify)
    other = _resigned(params, shopify.emulator.client.client_secret, shop="other-shop.myshopify.com")

    answer = _callback(client, other)

    assert answer.status_code == 400 and answer.get_json()["code"] == "invalid_state"
    _nothing_written(rt, shopify)


@pytest.mark.parametrize("shop", ["evil.example.com", "evil.com/x.myshopify.com", "-x.myshopify.com", ""])
def test_bad_shop_domains_are_refused(client, shopify, rt, shop):
    started = client.get(f"/shopify/install?{urlencode({'shop': shop})}")
    assert started.status_code == 400 and started.get_json()["code"] == "invalid_shop"

    params = _grant(client, shopify)
    forged = _resigned(params, shopify.emulator.client.client_secret, shop=shop)
    answer = _callback(client, forged)
    assert answer.status_code == 400 and answer.get_json()["code"] == "invalid_shop"
    _nothing_written(rt, shopify)


def test_an_install_opened_from_the_shop_admin_must_be_signed(client, shopify, rt):
    secret = shopify.emulator.client.client_secret
    signed = _resigned({"shop": SHOP, "timestamp": str(int(time.time()))}, secret)
    assert client.get(f"/shopify/install?{urlencode(signed)}").status_code == 302
    forged = {**signed, "hmac": "0" * 64}
    answer = client.get(f"/shopify/install?{urlencode(forged)}")
    assert answer.status_code == 403 and answer.get_json()["code"] == "invalid_hmac"
    _nothing_written(rt, shopify)


def test_a_grant_without_the_required_scopes_is_refused(client, shopify, rt):
    params = _grant(client, shopify, drop_scope="write_orders")

    answer = _callback(client, params)

    assert answer.status_code == 403, answer.get_data(as_text=True)
    problem = answer.get_json()
    assert problem["code"] == "missing_scopes" and problem["missing"] == ["write_orders"]
    _nothing_written(rt, shopify)


def test_kinds_without_installs_or_app_settings_answer_404(client, rt):
    for path, code in (
        ("/feed/install?shop=x", "not_installable"),
        ("/nowhere/install?shop=x", "unknown_kind"),
        ("/feed/callback?code=x", "not_installable"),
    ):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.get_json()["code"] == code, path
    unconfigured = rt.settings.model_copy(update={"shopify_api_key": ""})
    other = Runtime(settings=unconfigured, redis_url=rt.redis_url)
    try:
        answer = create_app(unconfigured, other).test_client().get(f"/shopify/install?shop={SHOP}")
    finally:
        other.close()
    assert answer.status_code == 404 and answer.get_json()["code"] == "install_not_configured"


def test_deliveries_of_shops_with_no_merchant_are_answered_only_when_the_app_signed_them(client, shopify, rt):
    """Compliance topics keep coming for shops that never finished an install (or were forgotten): an
    authentic one is acknowledged with 200 and changes nothing; a forged one is still a 401."""
    app = shopify.emulator.client
    body = b'{"shop_id": 954889, "shop_domain": "gone.myshopify.com"}'
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "shop/redact",
        "X-Shopify-Shop-Domain": "gone.myshopify.com",
        "X-Shopify-Webhook-Id": "redact-unknown-1",
        "X-Shopify-Triggered-At": "2026-11-03T10:00:00.000000000Z",
    }
    signed = client.post(
        "/webhooks/shopify",
        data=body,
        headers={**headers, "X-Shopify-Hmac-Sha256": sign(app.client_secret, body)},
    )
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert signed.get_json() == {"status": "no_merchant"}
    for secret in ("not-the-app-secret", ""):
        forged = client.post(
            "/webhooks/shopify", data=body, headers={**headers, "X-Shopify-Hmac-Sha256": sign(secret, body)}
        )
        assert forged.status_code == 401 and forged.get_json()["code"] == "unknown_store"
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 0
        assert session.scalar(select(func.count()).select_from(Merchant)) == 0


# --- expiring tokens ---------------------------------------------------------------------------------------


class _Refreshes:
    """Counts (and may slow down) the emulator's refresh grants."""

    def __init__(self, shopify: Server, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0):
        self.count = 0
        oauth = shopify.emulator.oauth
        original = oauth._refresh_grant

        def counted(token: str) -> tuple[int, dict[str, Any]]:
            self.count += 1
            time.sleep(delay)
            return original(token)

        monkeypatch.setattr(oauth, "_refresh_grant", counted)


def _store_credentials(rt: Runtime, merchant_id: int, **changes: str) -> dict[str, str]:
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        assert merchant is not None
        credentials = {**rt.secrets.decrypt(merchant.credentials_encrypted), **changes}
        merchant.credentials_encrypted = rt.secrets.encrypt(credentials)
        return credentials


def _adapter(rt: Runtime) -> Any:
    return build_adapter(_merchant(rt), rt.secrets, rt.settings)


def test_a_token_near_its_expiry_is_refreshed_and_the_pair_stored(client, shopify, rt, monkeypatch):
    merchant_id = _installed(client, shopify)["merchant_id"]
    refreshes = _Refreshes(shopify, monkeypatch)
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    old = _store_credentials(rt, merchant_id, access_token_expires_at=soon)

    assert _adapter(rt).currency() == "USD"

    assert refreshes.count == 1
    new = rt.secrets.decrypt(_merchant(rt).credentials_encrypted)
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert datetime.fromisoformat(new["access_token_expires_at"]) > datetime.now(UTC) + timedelta(minutes=59)
    assert new["client_secret"] == old["client_secret"] and new["scopes"] == old["scopes"]
    assert shopify.emulator.oauth.check(new["access_token"])
    assert _adapter(rt).currency() == "USD" and refreshes.count == 1  # the stored pair is used as it is


def test_a_401_refreshes_once_and_the_request_goes_through(client, shopify, rt, monkeypatch):
    merchant_id = _installed(client, shopify)["merchant_id"]
    refreshes = _Refreshes(shopify, monkeypatch)
    old = rt.secrets.decrypt(_merchant(rt).credentials_encrypted)
    shopify.emulator.oauth._access[old["access_token"]].expires_at = 0  # revoked early at the store

    assert _adapter(rt).currency() == "USD"

    assert refreshes.count == 1
    new = rt.secrets.decrypt(_merchant(rt).credentials_encrypted)
    assert new["access_token"] != old["access_token"]
    assert merchant_id == _merchant(rt).id and _merchant(rt).status == "installed"


def test_two_refreshers_at_once_refresh_once(client, shopify, rt, monkeypatch):
    merchant_id = _installed(client, shopify)["merchant_id"]
    refreshes = _Refreshes(shopify, monkeypatch, delay=0.3)
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    _store_credentials(rt, merchant_id, access_token_expires_at=expired)
    adapters = [_adapter(rt), _adapter(rt)]
    results: list[str] = []
    errors: list[BaseException] = []

    def use(adapter: Any) -> None:
        try:
            adapter.currency()
            results.append(adapter.credentials["access_token"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(adapter,)) for adapter in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == [] and refreshes.count == 1
    stored = rt.secrets.decrypt(_merchant(rt).credentials_encrypted)
    assert results == [stored["access_token"]] * 2


def test_a_refused_refresh_pauses_the_merchant_once(client, shopify, rt, monkeypatch):
    merchant_id = _installed(client, shopify)["merchant_id"]
    drain(rt)
    refreshes = _Refreshes(shopify, monkeypatch)
    stored = rt.secrets.decrypt(_merchant(rt).credentials_encrypted)
    shopify.emulator.oauth._refresh[stored["refresh_token"]].revoked = True  # e.g. the app was uninstalled
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    _store_credentials(rt, merchant_id, access_token_expires_at=expired)

    with pytest.raises(AuthError):
        _adapter(rt).currency()
    merchant = _merchant(rt)
    assert merchant.status == "paused" and "refresh" in (merchant.problem or "")
    assert refreshes.count == 1

    with rt.db.session() as session:  # resumed by support, the next sync fails the same way, once
        session.get(Merchant, merchant_id).status = "installed"  # type: ignore[union-attr]
    run = syncs.request_sync(rt, merchant_id)
    drain(rt)
    run = syncs.get_run(rt, run.id)
    assert run.status == "failed" and "invalid_grant" in (run.error or "")
    assert run.job_id and Job.fetch(run.job_id, connection=rt.redis).get_status() == "failed"
    assert _merchant(rt).status == "paused" and refreshes.count == 2
