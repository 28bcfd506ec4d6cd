"""A feed URL's query string and user:password are kept in the encrypted credentials: the Platform API, the
stored config and the CLI show the URL without them, and the feed is still fetched with them. Merchants
stored with them in their config are moved over by `storelink db upgrade`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from connector.infra import runtime
from connector.infra.models import Merchant, SyncRun
from tests.helpers import drain
from tests.integration.api_support import build_app, make_client
from tests.integration.feed_server import FeedServer

TOKEN = "tok_5ecret_value"


@pytest.fixture
def feed_host() -> Iterator[FeedServer]:
    server = FeedServer("127.0.0.1")
    try:
        yield server
    finally:
        server.close()


def _merchant(rt: runtime.Runtime) -> Merchant:
    with rt.db.session() as session:
        merchant = session.scalars(select(Merchant)).one()
        session.expunge(merchant)
        return merchant


def _sync(rt: runtime.Runtime) -> str:
    runtime.install(rt)
    drain(rt)
    with rt.db.session() as session:
        runs = session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        return runs[-1].status


def _listed(rt: runtime.Runtime, headers: dict[str, str]) -> str:
    response = build_app(rt).test_client().get("/v1/merchants", headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_query_secret_is_fetched_but_never_shown(cli, rt: runtime.Runtime, feed_host: FeedServer) -> None:
    _, headers = make_client(rt, "video-platform")
    url = f"{feed_host.url}/feed.csv?access_token={TOKEN}&shop=7"
    cli("merchants", "add", "feed", "--name", "acme", "--url", url, "--client", "video-platform")
    assert _sync(rt) == "succeeded"
    assert feed_host.requests == [f"/feed.csv?access_token={TOKEN}&shop=7"]

    listed = _listed(rt, headers)
    assert TOKEN not in listed
    assert json.loads(listed)["data"][0]["store_ref"] == f"{feed_host.url}/feed.csv"
    merchant = _merchant(rt)
    assert TOKEN not in json.dumps(merchant.config) and TOKEN not in merchant.store_ref
    assert rt.secrets.decrypt(merchant.credentials_encrypted) == {"url_query": f"access_token={TOKEN}&shop=7"}
    assert TOKEN not in cli("merchants", "list", "--json") + cli("merchants", "show", "acme")


def test_user_and_password_in_the_url_become_credentials(
    cli, rt: runtime.Runtime, feed_host: FeedServer
) -> None:
    host = feed_host.url.removeprefix("http://")
    cli("merchants", "add", "feed", "--name", "acme", "--url", f"http://feeds:{TOKEN}@{host}/feed.csv")
    assert _sync(rt) == "succeeded"
    expected = "Basic " + base64.b64encode(f"feeds:{TOKEN}".encode()).decode()
    assert feed_host.headers[0]["Authorization"] == expected
    merchant = _merchant(rt)
    assert TOKEN not in json.dumps(merchant.config) and TOKEN not in merchant.store_ref
    assert rt.secrets.decrypt(merchant.credentials_encrypted) == {"username": "feeds", "password": TOKEN}


def test_merchants_stored_with_the_secret_in_their_url_are_moved_over(
    cli, rt: runtime.Runtime, feed_host: FeedServer
) -> None:
    client_id, headers = make_client(rt, "video-platform")
    legacy = f"{feed_host.url}/feed.csv?access_token={TOKEN}"
    with rt.db.session() as session:
        session.add(
            Merchant(
                kind="feed",
                store_ref=legacy,
                name="old",
                config={"url": legacy, "format": "csv"},
                status="installed",
                platform_client_id=client_id,
            )
        )
    assert TOKEN not in _listed(rt, headers)  # shown redacted even before it is moved

    assert "1 merchant(s)" in cli("db", "upgrade")
    merchant = _merchant(rt)
    assert merchant.store_ref == f"{feed_host.url}/feed.csv"
    assert TOKEN not in json.dumps(merchant.config)
    assert rt.secrets.decrypt(merchant.credentials_encrypted) == {"url_query": f"access_token={TOKEN}"}
    assert "merchant(s)" not in cli("db", "upgrade")  # nothing left to move

    cli("resync", "old", "--no-wait")
    assert _sync(rt) == "succeeded"
    assert feed_host.requests == [f"/feed.csv?access_token={TOKEN}"]
