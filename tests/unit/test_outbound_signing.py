"""Standard Webhooks signatures verify with both the standardwebhooks and svix libraries, across rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import standardwebhooks
import svix.webhooks
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks.outbound.payload import encode, iso_utc
from webhooks.outbound.signing import generate_secret, is_valid_secret, sign

BODY = encode("order.confirmed", datetime(2025, 3, 1, 12, 0, tzinfo=UTC), {"order": "ord_1", "total": 1250})


def verify_both(secret: str, body: bytes, headers: dict[str, str]) -> None:
    assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "order.confirmed"
    svix.webhooks.Webhook(secret).verify(body, headers)  # returns None in svix 2.x, raises on mismatch


def test_secret_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert is_valid_secret(secret)
    assert generate_secret() != secret
    assert not is_valid_secret("whsec_" + base64.b64encode(b"short").decode())
    with pytest.raises(ValueError):
        generate_secret(16)


def test_headers_verify_with_both_libraries() -> None:
    secret = generate_secret()
    headers = sign("msg_abc", BODY, secret)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert abs(int(headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 5
    verify_both(secret, BODY, headers)


def test_rotation_signs_with_both_secrets() -> None:
    old, new = generate_secret(), generate_secret()
    headers = sign("msg_rot", BODY, new, previous_secret=old)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify_both(new, BODY, headers)
    verify_both(old, BODY, headers)  # a receiver that still holds only the previous secret


def test_wrong_secret_tampered_body_or_stale_timestamp_fail() -> None:
    secret = generate_secret()
    headers = sign("msg_x", BODY, secret)
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook(generate_secret()).verify(BODY, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(BODY + b" ", headers)
    stale = sign("msg_x", BODY, secret, timestamp=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(BODY, stale)


def test_payload_is_deterministic_and_utc() -> None:
    moment = datetime(2025, 3, 1, 13, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    a = encode("product.updated", moment, {"b": 1, "a": {"y": 2, "x": 1}})
    b = encode("product.updated", moment, {"a": {"x": 1, "y": 2}, "b": 1})
    assert a == b
    assert a == (
        b'{"data":{"a":{"x":1,"y":2},"b":1},"timestamp":"2025-03-01T13:00:00.000000Z","type":"product.updated"}'
    )
    with pytest.raises(ValueError):
        iso_utc(datetime(2025, 1, 1))  # naive on purpose
