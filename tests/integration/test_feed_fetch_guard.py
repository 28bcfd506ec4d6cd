"""Feed fetches reach only allowed addresses (every redirect hop checked), local files only when allowed, and
fetched text never comes back in an error: merchants added with the CLI, synced by a real RQ worker, read
through the Platform API."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from config.settings import Settings, load_settings
from connector.infra import addresses, runtime
from connector.infra.models import SyncRun
from tests.helpers import drain
from tests.integration.api_support import make_client
from tests.integration.feed_server import FeedServer


@pytest.fixture
def servers() -> Iterator[tuple[FeedServer, FeedServer]]:
    """An internal server on 127.0.0.2 and a feed host on 127.0.0.1 whose `/hop` redirects to it."""
    internal = FeedServer("127.0.0.2")
    front = FeedServer("127.0.0.1", target=f"{internal.url}/feed.csv")
    try:
        yield front, internal
    finally:
        front.close()
        internal.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with the feed settings left at their defaults (public addresses only, no files)."""
    feeds = ("feed_allow_files", "feed_allow_private_urls")
    return load_settings(**{k: v for k, v in settings.model_dump().items() if k not in feeds})


def _add_and_sync(
    cli, rt: runtime.Runtime, url: str, monkeypatch: pytest.MonkeyPatch, *options: str
) -> tuple[SyncRun, dict[str, str]]:
    """The merchant added by the CLI with the production defaults, synced by a worker; (run, API headers)."""
    monkeypatch.delenv("FEED_ALLOW_FILES")
    monkeypatch.delenv("FEED_ALLOW_PRIVATE_URLS")
    _, headers = make_client(rt, "video-platform")
    cli("merchants", "add", "feed", "--name", "acme", "--url", url, "--client", "video-platform", *options)
    runtime.install(rt)
    drain(rt)
    with rt.db.session() as session:
        run = session.scalars(select(SyncRun)).one()
        session.expunge(run)
        return run, headers


def test_redirect_to_another_loopback_address_is_refused(
    cli, rt: runtime.Runtime, client: FlaskClient, servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    front, internal = servers
    public = addresses.is_public
    # 127.0.0.1 stands in for a public feed host; every other address keeps the real rule
    monkeypatch.setattr(addresses, "is_public", lambda a: a == ipaddress.ip_address("127.0.0.1") or public(a))
    run, headers = _add_and_sync(cli, rt, f"{front.url}/hop.csv", monkeypatch)
    assert front.requests == ["/hop.csv"]
    assert internal.requests == []  # the redirect hop was never connected to
    assert run.status == "failed"
    assert run.error is not None and "not allowed" in run.error and "INTERNAL" not in run.error
    response = client.get("/v1/products", headers=headers)
    assert response.status_code == 200 and response.get_json()["data"] == []


def test_loopback_feed_refused_unless_private_addresses_allowed(
    cli, rt: runtime.Runtime, servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    front, _ = servers
    run, _ = _add_and_sync(cli, rt, f"{front.url}/feed.csv", monkeypatch)
    assert front.requests == []
    assert run.status == "failed"
    assert run.error is not None and "127.0.0.1" in run.error and "not allowed" in run.error
    assert "FEED_ALLOW_PRIVATE_URLS" in run.error


def test_an_error_page_from_the_feed_host_is_never_echoed(
    cli, rt: runtime.Runtime, servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    front, _ = servers
    monkeypatch.setattr(
        addresses, "is_public", lambda a: True
    )  # the loopback host stands in for a public one
    run, _ = _add_and_sync(cli, rt, f"{front.url}/missing.csv", monkeypatch)
    assert front.requests == ["/missing.csv"]
    assert run.status == "failed"
    assert run.error is not None and "HTTP 404" in run.error
    assert "SECRET" not in run.error and "abc123" not in run.error and "admin" not in run.error


def test_local_files_refused_by_default_and_never_echoed(
    cli, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = _add_and_sync(cli, rt, "file:///etc/passwd", monkeypatch, "--set", "format=csv")
    assert run.status == "failed"
    assert run.error is not None and "FEED_ALLOW_FILES" in run.error and "root" not in run.error


def test_a_file_that_is_not_a_feed_is_never_echoed(tmp_path: Path, cli, rt: runtime.Runtime) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
    allowed = load_settings(**{**rt.settings.model_dump(), "feed_allow_files": True})
    files_rt = runtime.Runtime(settings=allowed, redis_url=rt.redis_url)
    try:
        cli(
            "merchants", "add", "feed", "--name", "acme", "--url", f"{secret.as_uri()}", "--set", "format=csv"
        )
        runtime.install(files_rt)
        drain(files_rt)
        with files_rt.db.session() as session:
            run = session.scalars(select(SyncRun)).one()
            assert run.status == "failed"
            assert run.error is not None and "lacks required column" in run.error
            assert "root" not in run.error and "bash" not in run.error
    finally:
        files_rt.close()
