"""Webhook URLs: a refused address is named as not allowed (never what the host resolved to) with the setting
that allows it, a host lookup that hangs is given up on, and a delivery refused at send time names the
setting of the process that sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.infra import addresses, runtime
from connector.sandbox.feeds import write_feed
from connector.sandbox.platform import serve
from connector.worker import wire_outbound
from tests.helpers import add_feed_merchant, drain, sync_now
from tests.integration.api_support import build_app, make_client

SETTING = "WEBHOOK_ALLOW_PRIVATE_URLS"


@pytest.fixture
def hanging_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """A resolver that hangs until the test ends; lookups are given up on after a fraction of a second."""
    release = threading.Event()
    started = threading.Event()

    def lookup(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        started.set()
        release.wait(60)
        raise OSError("released")

    monkeypatch.setattr(addresses, "lookup", lookup)
    monkeypatch.setattr(addresses, "RESOLVE_TIMEOUT", 0.3)
    try:
        yield started
    finally:
        release.set()


def test_cli_refusals_name_the_setting_not_the_address(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTING)
    out = cli("webhooks", "add", "https://localhost/hook", expect=1)
    assert "not allowed" in out and SETTING in out
    assert "127.0.0.1" not in out and "::1" not in out and "Traceback" not in out
    out = cli("webhooks", "add", "http://127.0.0.1:9/hook", expect=1)
    assert "must use https" in out and SETTING in out
    assert json.loads(cli("webhooks", "list", "--json")) == []  # nothing was added


def test_api_refusal_never_says_what_the_host_resolves_to(rt: runtime.Runtime) -> None:
    _, headers = make_client(rt, "video-platform")
    response = (
        build_app(rt)
        .test_client()
        .post("/v1/webhook-endpoints", json={"url": "https://localhost/hook"}, headers=headers)
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "not allowed" in body and "127.0.0.1" not in body and "::1" not in body


def test_a_hanging_lookup_is_given_up_on(
    cli, rt: runtime.Runtime, hanging_resolver: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SETTING)
    out = cli("webhooks", "add", "https://slow.example/hook", expect=1)
    assert "did not resolve in time" in out
    _, headers = make_client(rt, "video-platform")
    response = (
        build_app(rt)
        .test_client()
        .post("/v1/webhook-endpoints", json={"url": "https://slow.example/hook"}, headers=headers)
    )
    assert response.status_code == 422 and "did not resolve in time" in response.get_data(as_text=True)
    assert hanging_resolver.is_set()  # the lookup really started, and is hanging still


def test_a_delivery_refused_at_send_time_names_the_setting(cli, rt: runtime.Runtime, tmp_path: Path) -> None:
    wire_outbound(rt.settings)  # the sending process does not allow private addresses
    with serve() as platform:
        cli("webhooks", "add", platform.url, "--event", "product.*")  # the CLI does
        merchant_id = add_feed_merchant(rt, write_feed(tmp_path / "feed.csv", 2))
        runtime.install(rt)
        sync_now(rt, merchant_id)
        drain(rt)
        assert platform.receiver.requests() == []
    failed = json.loads(cli("deliveries", "--status", "failed", "--json"))
    assert failed and all(SETTING in d["error"] and "storelink up" in d["error"] for d in failed)
