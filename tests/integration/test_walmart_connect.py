"""`storelink merchants add walmart` against the Walmart emulator: keys checked at once (a refused key writes
nothing), Multichannel enrolment found, notifications subscribed at PUBLIC_URL, first sync queued; and
`storelink merchants assign` links a merchant to a platform client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.infra import runtime
from connector.infra.models import Merchant, PlatformClient, SyncRun
from connector.sandbox.walmart import serve
from connector.sandbox.walmart.app import Server
from tests.fixtures import Runner

CLIENT_ID = "wm-sandbox-client"
SECRET = "wm-sandbox-secret"
PUBLIC_URL = "http://127.0.0.1:8123"


@pytest.fixture
def walmart() -> Iterator[Server]:
    with serve(client_id=CLIENT_ID, client_secret=SECRET) as server:
        server.store.seed_catalog(3)
        yield server


def _merchants(rt: runtime.Runtime) -> list[Merchant]:
    with rt.db.session() as session:
        rows = list(session.scalars(select(Merchant).order_by(Merchant.id)))
        for row in rows:
            session.expunge(row)
        return rows


def _add(cli: Callable[..., str], server: Server, *extra: str, expect: int = 0) -> str:
    return cli(
        "merchants",
        "add",
        "walmart",
        "--name",
        "wm-seller",
        "--client-id",
        CLIENT_ID,
        "--seller-id",
        server.store.partner_id,
        "--base-url",
        server.url,
        *extra,
        expect=expect,
    )


def test_connect_checks_keys_finds_the_channel_subscribes_and_queues_the_first_sync(
    cli: Callable[..., str], rt: runtime.Runtime, walmart: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = walmart.store.add_channel("Video commerce")
    monkeypatch.setenv("WALMART_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)
    cli("clients", "add", "acme")

    output = _add(cli, walmart, "--client", "acme", "--set", "mcs_poll_seconds=2")

    assert f"sales channel {channel.order_channel_id}" in output
    [merchant] = _merchants(rt)
    assert merchant.kind == "walmart"
    assert merchant.store_ref == walmart.store.partner_id
    assert merchant.config["mcs_enrolled"] is True
    assert merchant.config["order_channel_id"] == channel.order_channel_id
    assert merchant.config["mcs_poll_seconds"] == 2.0
    assert rt.secrets.decrypt(merchant.credentials_encrypted) == {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    with rt.db.session() as session:
        acme = session.scalars(select(PlatformClient).where(PlatformClient.name == "acme")).one()
        assert merchant.platform_client_id == acme.id
        runs = list(session.scalars(select(SyncRun).where(SyncRun.merchant_id == merchant.id)))
    assert [(run.kind, run.full, run.status) for run in runs] == [("catalog", True, "queued")]
    subscriptions = list(walmart.store.subscriptions.values())
    assert {s.event_type for s in subscriptions} >= {"INVENTORY_OOS", "PO_CREATED", "ORDER_STATUS_UPDATE"}
    assert {s.event_url for s in subscriptions} == {f"{PUBLIC_URL}/webhooks/walmart/{merchant.id}"}
    assert all(s.status == "ACTIVE" for s in subscriptions)


def test_a_refused_key_is_a_clear_error_and_writes_nothing(
    cli: Callable[..., str], rt: runtime.Runtime, walmart: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WALMART_CLIENT_SECRET", "not-the-secret")
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)

    output = _add(cli, walmart, expect=1)

    assert "Error:" in output
    assert "UNAUTHORIZED" in output
    assert "not-the-secret" not in output
    assert _merchants(rt) == []
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(SyncRun)) == 0
    assert walmart.store.subscriptions == {}


def test_a_seller_not_on_multichannel_is_connected_for_stock_reductions_and_no_public_url_warns(
    cli: Callable[..., str], rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WALMART_CLIENT_SECRET", SECRET)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    with serve(client_id=CLIENT_ID, client_secret=SECRET, mcs_enrolled=False) as server:
        output = _add(cli, server, "--no-sync")
        assert server.store.subscriptions == {}

    assert "platform sales will reduce Walmart stock" in output
    assert "PUBLIC_URL is not set" in output
    [merchant] = _merchants(rt)
    assert merchant.config["mcs_enrolled"] is False
    assert merchant.config["order_channel_id"] is None
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(SyncRun)) == 0


def test_an_enrolled_seller_with_two_channels_must_name_one(
    cli: Callable[..., str], rt: runtime.Runtime, walmart: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    walmart.store.add_channel("Video commerce")
    walmart.store.add_channel("Marketplace B")
    monkeypatch.setenv("WALMART_CLIENT_SECRET", SECRET)

    output = _add(cli, walmart, expect=1)
    assert "order_channel_name" in output
    assert _merchants(rt) == []

    output = _add(
        cli, walmart, "--set", "order_channel_name=Marketplace B", "--set", "mcs_poll_seconds=45", "--no-sync"
    )
    assert "mcs_poll_seconds leaves an order push attempt no time" in output
    [merchant] = _merchants(rt)
    chosen = next(c for c in walmart.store.channels.values() if c.order_channel_name == "Marketplace B")
    assert merchant.config["order_channel_id"] == chosen.order_channel_id


def test_the_secret_is_prompted_for_when_not_given(
    rt: runtime.Runtime, walmart: Server, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WALMART_CLIENT_SECRET", raising=False)
    result = runner(
        *("merchants", "add", "walmart", "--name", "prompted", "--client-id", CLIENT_ID),
        *("--base-url", walmart.url, "--no-mcs", "--no-sync"),
        input=f"{SECRET}\n",
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    [merchant] = _merchants(rt)
    assert merchant.config["mcs_enrolled"] is False
    assert merchant.store_ref == CLIENT_ID


def test_assign_links_any_merchant_to_a_platform_client(
    cli: Callable[..., str], rt: runtime.Runtime, tmp_path: object
) -> None:
    cli("clients", "add", "acme")
    cli("merchants", "add", "feed", "--name", "feed-shop", "--url", "/nonexistent/feed.csv", "--no-sync")
    with rt.db.session() as session:
        acme_id = session.scalars(select(PlatformClient.id).where(PlatformClient.name == "acme")).one()

    output = cli("merchants", "assign", "feed-shop", "--client", "acme")
    assert f"platform client {acme_id}" in output
    [merchant] = _merchants(rt)
    assert merchant.platform_client_id == acme_id

    assert "no platform client" in cli("merchants", "assign", "feed-shop", "--client", "nobody", expect=1)
    assert "walmart options" in cli(
        "merchants", "add", "feed", "--name", "x", "--url", "/x.csv", "--client-id", "c", expect=2
    )


def test_the_options_walmart_declares_are_refused_for_other_kinds_and_required_for_walmart(
    cli: Callable[..., str], rt: runtime.Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text("sku,title,price,quantity\nA,a,1.00,1\n")
    out = cli(
        "merchants", "add", "feed", "--name", "f", "--url", str(feed), "--client-id", "X", "--mcs", expect=2
    )
    assert "--client-id, --mcs/--no-mcs: walmart options, not for feed" in out
    out = cli("merchants", "add", "walmart", "--name", "w", "--no-sync", expect=2)
    assert "walmart needs --client-id" in out and "Traceback" not in out
    assert _merchants(rt) == []

    monkeypatch.setenv("WALMART_CLIENT_SECRET", SECRET)  # an environment value is no option given
    cli("merchants", "add", "feed", "--name", "f", "--url", str(feed), "--no-sync")
    assert [m.kind for m in _merchants(rt)] == ["feed"]
