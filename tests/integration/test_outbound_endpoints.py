"""Endpoint management on a real database, and the transport's send-time address check and limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connector.domain.errors import NotFoundError, ValidationError
from connector.infra import runtime
from connector.infra.models import WebhookEndpoint
from connector.sandbox.platform import Fault, Server, serve
from webhooks.outbound import transport
from webhooks.outbound.endpoints import (
    create_endpoint,
    delete_endpoint,
    list_endpoints,
    rotate_secret,
    signing_secrets,
    update_endpoint,
)
from webhooks.outbound.signing import generate_secret, sign

Runtime = runtime.Runtime


@pytest.fixture
def platform() -> Iterator[Server]:
    with serve() as server:
        yield server


def test_create_list_update_delete(rt: Runtime) -> None:
    with rt.db.session() as session:
        created = create_endpoint(
            session, rt.secrets, url="https://93.184.215.14/hooks", event_types=["order.*", "product.updated"]
        )
        endpoint_id = created.endpoint.id
        assert created.secret.startswith("whsec_")
        assert created.secret.encode() not in created.endpoint.secret_encrypted
        assert rt.secrets.decrypt_text(created.endpoint.secret_encrypted) == created.secret
        assert created.endpoint.public_id.startswith("we_")
    with rt.db.session() as session:
        [listed] = list_endpoints(session)
        assert listed.id == endpoint_id and listed.event_types == ["order.*", "product.updated"]
        assert list_endpoints(session, platform_client_id=42) == []
        with pytest.raises(ValidationError, match="is not allowed"):
            update_endpoint(session, endpoint_id, url="https://10.0.0.8/hooks")
    with rt.db.session() as session:
        endpoint = update_endpoint(session, endpoint_id, event_types=["*"], enabled=False)
        assert not endpoint.enabled and endpoint.disabled_reason
        endpoint.consecutive_failures = 7
    with rt.db.session() as session:
        endpoint = update_endpoint(session, endpoint_id, enabled=True)
        assert endpoint.enabled and endpoint.disabled_reason is None and endpoint.consecutive_failures == 0
        assert endpoint.event_types == ["*"] and endpoint.url == "https://93.184.215.14/hooks"
    with rt.db.session() as session:
        delete_endpoint(session, endpoint_id)
    with rt.db.session() as session:
        assert session.get(WebhookEndpoint, endpoint_id) is None
        with pytest.raises(NotFoundError):
            delete_endpoint(session, endpoint_id)


def test_create_refuses_private_urls_unless_allowed(rt: Runtime) -> None:
    with rt.db.session() as session:
        for url in (
            "https://169.254.169.254/latest/meta-data/",
            "https://localhost/x",
            "http://127.0.0.1:9/x",
        ):
            with pytest.raises(ValidationError):
                create_endpoint(session, rt.secrets, url=url)
        assert list_endpoints(session) == []
        created = create_endpoint(session, rt.secrets, url="http://127.0.0.1:9/x", allow_private=True)
        assert created.endpoint.url == "http://127.0.0.1:9/x"


def test_rotate_keeps_previous_secret_for_the_grace_period(rt: Runtime) -> None:
    with rt.db.session() as session:
        created = create_endpoint(session, rt.secrets, url="https://93.184.215.14/hooks")
        endpoint_id = created.endpoint.id
    now = datetime.now(UTC)
    with rt.db.session() as session:
        rotated = rotate_secret(session, rt.secrets, endpoint_id, now=now)
        assert rotated.secret != created.secret
    with rt.db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.previous_secret_expires_at == now + timedelta(hours=24)
        assert signing_secrets(rt.secrets, endpoint, now=now) == (rotated.secret, created.secret)
        later = now + timedelta(hours=24, seconds=1)
        assert signing_secrets(rt.secrets, endpoint, now=later) == (rotated.secret, None)
        with pytest.raises(ValidationError):
            rotate_secret(session, rt.secrets, endpoint_id, grace=timedelta(seconds=-1))


def test_send_time_check_refuses_loopback_unless_allowed(platform: Server) -> None:
    secret = generate_secret()
    platform.receiver.set_secrets([secret])
    body = b'{"data":{},"timestamp":"2025-01-01T00:00:00.000000Z","type":"t.x"}'
    headers = sign("msg_1", body, secret)
    refused = transport.post(platform.url, body, headers, timeout=5)
    assert refused.status_code is None and refused.blocked
    assert refused.error is not None and "address refused" in refused.error
    assert platform.receiver.requests() == []
    localhost = platform.url.replace("127.0.0.1", "localhost")  # a name that resolves to loopback
    assert transport.post(localhost, body, headers, timeout=5).blocked
    allowed = transport.post(platform.url, body, headers, timeout=5, allow_private=True)
    assert allowed.status_code == 200 and not allowed.blocked
    assert [r.webhook_id for r in platform.receiver.received()] == ["msg_1"]


def test_no_redirects_capped_excerpt_and_retry_after(platform: Server) -> None:
    secret = generate_secret()
    platform.receiver.set_secrets([secret])
    body = b'{"data":{},"timestamp":"2025-01-01T00:00:00.000000Z","type":"t.x"}'
    platform.receiver.plan(Fault(307, body="x" * 5000), Fault(503, retry_after="30"))
    moved = transport.post(platform.url, body, sign("msg_2", body, secret), allow_private=True)
    assert moved.status_code == 307
    assert moved.excerpt is not None and len(moved.excerpt) == transport.EXCERPT_BYTES
    busy = transport.post(platform.url, body, sign("msg_2", body, secret), allow_private=True)
    assert busy.status_code == 503 and busy.retry_after == 30.0
    assert len(platform.receiver.requests()) == 2


def test_receiver_deduplicates_and_refuses_bad_signatures(platform: Server) -> None:
    secret = generate_secret()
    platform.receiver.set_secrets([secret])
    body = b'{"data":{"a":1},"timestamp":"2025-01-01T00:00:00.000000Z","type":"t.x"}'
    headers = sign("msg_3", body, secret)
    for _ in range(2):
        assert transport.post(platform.url, body, headers, allow_private=True).status_code == 200
    assert len(platform.receiver.received()) == 1 and platform.receiver.duplicates == 1
    forged = sign("msg_4", body, generate_secret())
    assert transport.post(platform.url, body, forged, allow_private=True).status_code == 401
    assert [r.webhook_id for r in platform.receiver.received()] == ["msg_3"]


@pytest.mark.parametrize("url", ["https://" + "a" * 64 + ".example.com/hook", "https://x..y/hook"])
def test_unencodable_host_names_are_validation_errors(url):
    from connector.domain.errors import ValidationError
    from webhooks.outbound.endpoints import validate_url

    with pytest.raises(ValidationError, match="invalid host name"):
        validate_url(url)
