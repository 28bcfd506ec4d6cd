"""Catalog changes reach the platform: an endpoint registered over the CLI, a sync run by the worker, and
signed deliveries verified by the sandbox platform receiver."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.sandbox.feeds import write_feed
from connector.sandbox.platform import serve
from connector.worker import wire_outbound
from tests.helpers import add_feed_merchant, drain, rewrite_feed, sync_now


def test_product_events_are_delivered_signed_and_replayable(rt, cli, tmp_path: Path):
    wire_outbound(rt.settings.model_copy(update={"webhook_allow_private_urls": True}))
    with serve() as platform:
        out = cli("webhooks", "add", platform.url, "--event", "product.*")
        secret = re.search(r"(whsec_\S+)", out).group(1)  # type: ignore[union-attr]
        platform.receiver.set_secrets([secret])
        listed = json.loads(cli("webhooks", "list", "--json"))
        assert [(e["url"], e["event_types"]) for e in listed] == [(platform.url, ["product.*"])]

        feed = write_feed(tmp_path / "feed.csv", 12, variants_per_product=3)
        merchant_id = add_feed_merchant(rt, feed)
        sync_now(rt, merchant_id)  # the sync publishes 4 product.updated; the same worker delivers them
        drain(rt)

        received = platform.receiver.received()
        assert sorted(r.data["product"]["external_id"] for r in received) == [
            "P-000001",
            "P-000002",
            "P-000003",
            "P-000004",
        ]
        assert {r.type for r in received} == {"product.updated"}
        assert all(req.verified for req in platform.receiver.requests())

        # The platform fails the next change for good; support replays it once the platform is back.
        platform.receiver.plan(400)
        rewrite_feed(feed, lambda i, row: {**row, "title": "Renamed"} if i == 0 else row)
        sync_now(rt, merchant_id)
        drain(rt)
        failed = json.loads(cli("deliveries", "--status", "failed", "--json"))
        assert len(failed) == 1 and failed[0]["type"] == "product.updated" and failed[0]["last_status"] == 400

        assert "replayed 1 delivery" in cli("replay", str(failed[0]["id"]))
        drain(rt)
        assert json.loads(cli("deliveries", "--status", "failed", "--json")) == []
        assert len(platform.receiver.received()) == 5
        assert len(json.loads(cli("deliveries", "--event-type", "product.updated", "--json"))) == 5
        assert json.loads(cli("deliveries", "--event-type", "order.confirmed", "--json")) == []

        from connector.app import create_app

        metrics = create_app(rt.settings, rt).test_client().get("/metrics").get_data(as_text=True)
        assert 'storelink_webhook_deliveries{status="succeeded"} 5.0' in metrics
        assert 'storelink_webhook_attempts_total{outcome="success"} 5.0' in metrics
        assert 'storelink_webhook_attempts_total{outcome="failure"} 1.0' in metrics
        assert "storelink_webhook_attempt_duration_ms_total" in metrics
        assert 'storelink_webhook_attempt_duration_seconds_bucket{le="+Inf"} 6.0' in metrics
        assert "storelink_webhook_attempt_duration_seconds_count 6.0" in metrics
        cli("replay", "999999", expect=1)


def test_lease_and_sweep_grace_come_from_the_settings(rt) -> None:
    from datetime import timedelta

    from connector.infra import outbox, runtime
    from webhooks.outbound import delivery
    from webhooks.outbound.endpoints import create_endpoint

    settings = rt.settings.model_copy(
        update={"webhook_timeout_seconds": 3.0, "webhook_lease_margin_seconds": 1.5}
    )
    wire_outbound(settings)
    assert delivery.current_config().lease == timedelta(seconds=4.5)

    with rt.db.session() as session:
        create_endpoint(
            session, rt.secrets, url="http://127.0.0.1:9/hook", event_types=["*"], allow_private=True
        )
        outbox.publish(session, [outbox.DomainEvent("order.confirmed", None, {})])
    rt.redis.flushdb()  # the delivery's job is lost
    assert delivery.sweep() == 0  # the default grace (60 s) has not passed
    runtime.install(
        runtime.Runtime(
            settings=settings.model_copy(update={"webhook_sweep_grace_seconds": 0.0}), redis_url=rt.redis_url
        )
    )
    assert delivery.sweep() == 1
