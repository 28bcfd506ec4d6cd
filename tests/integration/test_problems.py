"""The problem list: each cause injected in an emulator raises its problem, and it clears itself once the cause
is gone (kept as history), seen through `storelink problems list` and `storelink merchants show`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from adapters.shopify import const
from config.settings import Settings
from connector.bench.shopify import SHOP, create_orders
from connector.domain.errors import RetryableError
from connector.infra import http, outbox, problems, runtime
from connector.infra.store_adapters import build_adapter
from connector.merchants.records import create_merchant, get_merchant, install_merchant
from connector.orders import push
from connector.sandbox import platform
from connector.sandbox.shopify import serve
from connector.sandbox.shopify.faults import ApiFault
from connector.support import ops
from tests.helpers import add_feed_merchant, drain, sync_now
from tests.integration.ops_support import (
    PUBLIC_URL,
    Shop,
    open_keys,
    run_kind,
    runtime_with,
    shopify_shop,
    variant_ids,
)
from webhooks.outbound import delivery, fanout
from webhooks.outbound.endpoints import create_endpoint

CALLBACK = f"{PUBLIC_URL}/webhooks/shopify"


@pytest.fixture
def ops_rt(settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[runtime.Runtime]:
    """A runtime with PUBLIC_URL set (on loopback: nothing is sent there) and store retries without waits."""
    monkeypatch.setattr(http, "_sleep", lambda seconds: None)
    yield from runtime_with(settings, redis, public_url=PUBLIC_URL, http_timeout_seconds=2)


@pytest.fixture
def shop(ops_rt: runtime.Runtime) -> Iterator[Shop]:
    yield from shopify_shop(ops_rt, products=2, variants=1)


def test_a_refused_credentials_refresh_pauses_the_merchant_until_it_is_installed_again(ops_rt, cli):
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(2, 1)
        config = {"shop": SHOP, "base_url": server.url}
        past, future = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(days=30)
        with ops_rt.db.session() as session:
            merchant_id = create_merchant(
                session,
                ops_rt.secrets,
                kind="shopify",
                name="expired",
                config=config,
                credentials={
                    "access_token": "shpat_expired",
                    "access_token_expires_at": past.isoformat(),
                    "refresh_token": "shprt_unknown",
                    "refresh_token_expires_at": future.isoformat(),
                    "client_id": server.emulator.client.client_id,
                    "client_secret": server.emulator.client.client_secret,
                },
            ).id

        assert sync_now(ops_rt, merchant_id).status == "failed"

        assert open_keys(ops_rt, merchant_id) == {"credentials_refused"}
        shown = cli("merchants", "show", "expired")
        assert "paused" in shown and "Store credentials refused (credentials_refused)" in shown
        assert "install the app again" in shown
        listed = cli("problems", "list", "--merchant", "expired")
        assert "credentials_refused" in listed and "refused the grant (invalid_grant)" in listed

        with ops_rt.db.session() as session:  # the merchant installs the app again
            install_merchant(
                session,
                ops_rt.secrets,
                kind="shopify",
                config=config,
                credentials={"access_token": "shpat_sandbox"},
            )
        assert open_keys(ops_rt, merchant_id) == set()
        assert sync_now(ops_rt, merchant_id).status == "succeeded"
        assert "no open problems" in cli("problems", "list")
        [history] = ops.problem_history([merchant_id], rt=ops_rt)
        assert history.key == "credentials_refused" and history.cleared_at is not None and history.count == 1
        assert "credentials_refused" in cli("problems", "list", "--all")


def test_missing_store_webhook_subscriptions_show_until_they_are_back(ops_rt, shop):
    adapter = build_adapter(_merchant(ops_rt, shop), ops_rt.secrets, ops_rt.settings)
    adapter.register_webhooks(CALLBACK)  # type: ignore[attr-defined]
    assert run_kind(ops_rt, shop.merchant_id, "reconcile").details["webhooks_missing"] == []
    assert open_keys(ops_rt, shop.merchant_id) == set()

    [gone] = [s for s in shop.server.store.subscriptions.values() if s.topic == "PRODUCTS_UPDATE"]
    shop.server.store.remove_subscription(gone.legacy_resource_id)
    run = run_kind(ops_rt, shop.merchant_id, "reconcile")

    assert run.details["webhooks_missing"] == ["products/update"]
    [problem] = ops.open_problems([shop.merchant_id], rt=ops_rt)
    assert problem.key == "webhooks_missing" and problem.detail and "products/update" in problem.detail

    adapter.register_webhooks(CALLBACK)  # type: ignore[attr-defined]  (what installing again does)
    assert run_kind(ops_rt, shop.merchant_id, "reconcile").details["webhooks_missing"] == []
    assert open_keys(ops_rt, shop.merchant_id) == set()
    assert len(const.WEBHOOK_TOPICS) == len(shop.server.store.subscriptions)


def _merchant(rt: runtime.Runtime, shop: Shop):  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        merchant = get_merchant(session, shop.merchant_id)
        session.expunge(merchant)
        return merchant


def _push_failing(rt: runtime.Runtime, order_id: int) -> None:
    with pytest.raises(RetryableError):
        push.push_order(order_id)


def test_repeated_push_failures_show_after_the_third_and_clear_with_a_confirmed_order(ops_rt, shop):
    (order_id,) = create_orders(ops_rt, shop.merchant_id, variant_ids(ops_rt, shop.merchant_id), 1)
    shop.server.emulator.faults.set_random(1.0, [ApiFault.server_error(503)])

    _push_failing(ops_rt, order_id)
    _push_failing(ops_rt, order_id)
    assert open_keys(ops_rt, shop.merchant_id) == {"store_unreachable"}  # a failed push shows at 3
    _push_failing(ops_rt, order_id)
    assert open_keys(ops_rt, shop.merchant_id) == {"store_unreachable", "push_failing"}
    [failing] = [p for p in ops.open_problems(rt=ops_rt) if p.key == "push_failing"]
    assert failing.count == 3 and failing.detail and "503" in failing.detail

    shop.server.emulator.faults.clear()
    assert push.push_order(order_id) is not None

    assert open_keys(ops_rt, shop.merchant_id) == set()


def test_throttling_that_lasts_shows_and_clears_when_the_store_answers(ops_rt, shop, monkeypatch):
    monkeypatch.setitem(
        problems.CAUSES, "throttled", dataclasses.replace(problems.CAUSES["throttled"], after_seconds=0.0)
    )
    (order_id,) = create_orders(ops_rt, shop.merchant_id, variant_ids(ops_rt, shop.merchant_id), 1)
    shop.server.emulator.faults.set_random(1.0, [ApiFault.too_many_requests(0.01)])

    _push_failing(ops_rt, order_id)

    assert "throttled" in open_keys(ops_rt, shop.merchant_id)
    shop.server.emulator.faults.clear()
    run = run_kind(ops_rt, shop.merchant_id, "inventory")
    assert run.status == "succeeded"
    assert "throttled" not in open_keys(ops_rt, shop.merchant_id)


def test_an_unreachable_feed_shows_until_a_sync_reads_it(ops_rt, cli, tmp_path):
    feed = tmp_path / "feed.csv"
    merchant_id = add_feed_merchant(ops_rt, feed, name="acme")

    assert sync_now(ops_rt, merchant_id).status == "failed"

    assert open_keys(ops_rt, merchant_id) == {"store_unreachable"}
    assert "Store or feed unreachable (store_unreachable)" in cli("merchants", "show", "acme")
    assert "Store or feed unreachable" in cli("merchants", "list")

    feed.write_text("id,title,price,availability,quantity\n1,Tee,10.00 USD,in_stock,3\n")
    assert sync_now(ops_rt, merchant_id).status == "succeeded"
    assert open_keys(ops_rt, merchant_id) == set()


@pytest.fixture
def receiver(ops_rt: runtime.Runtime) -> Iterator[platform.Server]:
    delivery.configure(delivery.DeliveryConfig(allow_private=True, timeout=5))
    fanout.install()
    with platform.serve() as server:
        yield server
    fanout.uninstall()
    delivery.configure()


def _publish(rt: runtime.Runtime, count: int) -> None:
    with rt.db.session() as session:
        outbox.publish(session, [outbox.DomainEvent("product.updated", None, {"n": n}) for n in range(count)])


def test_a_failing_platform_endpoint_shows_after_five_failures_and_clears_on_a_success(ops_rt, receiver, cli):
    with ops_rt.db.session() as session:
        created = create_endpoint(
            session, ops_rt.secrets, url=receiver.url, event_types=["*"], allow_private=True
        )
        endpoint_id = created.endpoint.id
    receiver.receiver.add_secret(created.secret)
    receiver.receiver.plan(*([platform.Fault(400)] * 5))

    _publish(ops_rt, 4)
    drain(ops_rt)
    assert open_keys(ops_rt, endpoint_id=endpoint_id) == set()
    _publish(ops_rt, 1)
    drain(ops_rt)

    assert open_keys(ops_rt, endpoint_id=endpoint_id) == {"endpoint_failing"}
    listed = cli("problems", "list")
    assert f"endpoint {receiver.url}" in listed and "HTTP 400" in listed

    _publish(ops_rt, 1)
    drain(ops_rt)
    assert open_keys(ops_rt, endpoint_id=endpoint_id) == set()
