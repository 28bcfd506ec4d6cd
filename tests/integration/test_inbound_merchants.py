"""Store webhooks of several merchants through HTTP: each merchant's deliveries are deduplicated on their own
(per feed store, per Shopify shop, per Walmart seller), and a signed body nested too deeply to read is a 4xx
problem, logged as rejected, with nothing stored."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from adapters.shopify import webhook as shopify_webhook
from adapters.walmart import webhook as walmart_webhook
from connector.infra import runtime
from connector.infra.models import InboundEvent, InventoryLevel, Variant
from connector.merchants.records import create_merchant
from connector.sandbox.feed_push import new_secret
from connector.sandbox.feeds import write_feed
from tests.helpers import drain, sync_now

DEPTH = 100_000
"""Nesting of the hostile bodies: far beyond Python's recursion limit, still well under the size limit."""
NESTED = ("[" * DEPTH + "]" * DEPTH).encode()
LATER = datetime.now(UTC) + timedelta(days=1)
"""Store time of the stock deliveries: after the catalog pass each merchant starts with."""


@dataclass
class Sender:
    """Signs and posts one store kind's deliveries for one merchant."""

    merchant_id: int
    post: Callable[[str, bytes], Any]
    """(delivery id, body) -> response"""
    body: Callable[[str], bytes]
    """delivery id -> a valid body"""
    nested: Callable[[str], bytes]
    """delivery id -> a body nested DEPTH deep"""


def feed_sender(rt: runtime.Runtime, client: FlaskClient, tmp_path: Path, name: str) -> Sender:
    secret = new_secret()
    feed = write_feed(tmp_path / f"{name}.csv", 3, variants_per_product=1)
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="feed",
            name=name,
            config={"url": str(feed)},
            credentials={"webhook_secret": secret},
        )
        merchant_id = merchant.id
    assert sync_now(rt, merchant_id).status == "succeeded"
    signer = Webhook(secret)

    def post(delivery_id: str, body: bytes) -> Any:
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(delivery_id, now, body.decode()),
        }
        return client.post(f"/webhooks/feed/{merchant_id}", data=body, headers=headers)

    def body(delivery_id: str) -> bytes:
        data = {
            "type": "inventory.updated",
            "timestamp": LATER.isoformat(),
            "data": {"items": [{"id": "SKU-000001", "quantity": 4}]},
        }
        return json.dumps(data).encode()

    def nested(delivery_id: str) -> bytes:
        return b'{"type": "inventory.updated", "data": {"items": ' + NESTED + b"}}"

    return Sender(merchant_id, post, body, nested)


def shopify_sender(rt: runtime.Runtime, client: FlaskClient, tmp_path: Path, name: str) -> Sender:
    shop, secret = f"{name}.myshopify.com", f"secret-{name}"
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="shopify",
            name=name,
            config={"shop": shop},
            credentials={"access_token": "shpat_x", "client_id": "cid", "client_secret": secret},
        )
        merchant_id = merchant.id

    def post(delivery_id: str, body: bytes) -> Any:
        headers = {
            "content-type": "application/json",
            "x-shopify-shop-domain": shop,
            "x-shopify-topic": "products/delete",
            "x-shopify-webhook-id": delivery_id,
            "x-shopify-hmac-sha256": shopify_webhook.signature(secret, body),
        }
        return client.post("/webhooks/shopify", data=body, headers=headers)

    def body(delivery_id: str) -> bytes:
        return json.dumps({"id": 101}).encode()

    def nested(delivery_id: str) -> bytes:
        return b'{"id": 101, "extra": ' + NESTED + b"}"

    return Sender(merchant_id, post, body, nested)


def walmart_sender(rt: runtime.Runtime, client: FlaskClient, tmp_path: Path, name: str) -> Sender:
    secret = f"secret-{name}"
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="walmart",
            name=name,
            config={"seller_id": f"seller-{name}"},
            credentials={"client_id": f"cid-{name}", "client_secret": secret},
        )
        merchant_id = merchant.id

    def post(delivery_id: str, body: bytes) -> Any:
        headers = {
            "content-type": "application/json",
            "authorization": walmart_webhook.signature(secret, body),
        }
        return client.post(f"/webhooks/walmart/{merchant_id}", data=body, headers=headers)

    def source(delivery_id: str) -> str:
        return json.dumps(
            {"eventType": "OFFER_UNPUBLISHED", "eventTime": "2026-11-03T12:00:00Z", "eventId": delivery_id}
        )

    def body(delivery_id: str) -> bytes:
        return f'{{"source": {source(delivery_id)}, "payload": {{"sku": "SKU-1"}}}}'.encode()

    def nested(delivery_id: str) -> bytes:
        return f'{{"source": {source(delivery_id)}, "payload": '.encode() + NESTED + b"}"

    return Sender(merchant_id, post, body, nested)


KINDS = {"feed": feed_sender, "shopify": shopify_sender, "walmart": walmart_sender}


def stored(rt: runtime.Runtime) -> list[tuple[int | None, str, str]]:
    with rt.db.session() as session:
        return [
            (row.merchant_id, row.dedupe_key, row.status)
            for row in session.scalars(select(InboundEvent).order_by(InboundEvent.id))
        ]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_same_delivery_id_from_two_merchants_is_two_deliveries(
    rt: runtime.Runtime, client: FlaskClient, tmp_path, kind
):
    a = KINDS[kind](rt, client, tmp_path, "alpha")
    b = KINDS[kind](rt, client, tmp_path, "beta")

    first = a.post("msg_1001", a.body("msg_1001"))
    assert first.status_code == 200 and first.json["status"] == "accepted", first.data
    second = b.post("msg_1001", b.body("msg_1001"))
    assert second.status_code == 200 and second.json["status"] == "accepted", second.data
    again = b.post("msg_1001", b.body("msg_1001"))  # a store resending its own delivery
    assert again.status_code == 200 and again.json["status"] == "duplicate"

    assert [(m, key) for m, key, _ in stored(rt)] == [
        (a.merchant_id, "msg_1001"),
        (b.merchant_id, "msg_1001"),
    ]
    if kind == "feed":  # applied for each merchant (the others would call their store)
        drain(rt)
        assert [status for _, _, status in stored(rt)] == ["processed", "processed"]
        assert stock(rt, a.merchant_id) == stock(rt, b.merchant_id) == 4


def stock(rt: runtime.Runtime, merchant_id: int) -> int | None:
    with rt.db.session() as session:
        return session.scalar(
            select(InventoryLevel.available)
            .join(Variant, Variant.id == InventoryLevel.variant_id)
            .where(Variant.merchant_id == merchant_id, Variant.external_id == "SKU-000001")
        )


def _scraped(client: FlaskClient, sample: str) -> float:
    """The value of one sample on /metrics (0 before it was first counted)."""
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_signed_body_nested_too_deeply_is_a_4xx_problem(
    rt: runtime.Runtime, client: FlaskClient, tmp_path, kind, caplog: pytest.LogCaptureFixture
):
    sender = KINDS[kind](rt, client, tmp_path, "deep")
    body = sender.nested("msg_deep")
    assert len(body) < rt.settings.max_request_bytes

    counted = f'storelink_inbound_rejected_total{{code="too_deep",source="{kind}"}}'
    before = _scraped(client, counted)
    with caplog.at_level(logging.WARNING, logger="webhooks.inbound.receiver"):
        response = sender.post("msg_deep", body)

    assert response.status_code == 400, response.data
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "too_deep"
    rejected = [r for r in caplog.records if r.getMessage() == "inbound delivery rejected"]
    assert [(r.__dict__["merchant_id"], r.__dict__["code"]) for r in rejected] == [
        (sender.merchant_id, "too_deep")
    ]
    assert stored(rt) == []
    assert _scraped(client, counted) == before + 1
    # The merchant's readable deliveries still go through.
    fine = sender.post("msg_fine", sender.body("msg_fine"))
    assert fine.status_code == 200 and fine.json["status"] == "accepted"
