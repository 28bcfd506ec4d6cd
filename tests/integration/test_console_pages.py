"""The console's pages over HTTP: a merchant user (or a one-time link) sees only its own merchants, support sees
every one; a resync from the console is the CLI's run; a completed install lands on the merchant's page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.catalog import syncs
from connector.infra.models import LivePin, LiveSession, Variant
from connector.infra.models_console import ConsoleLink
from connector.infra.runtime import Runtime
from connector.merchants import users
from connector.sandbox.feeds import write_feed
from connector.stock import counters
from tests.helpers import add_feed_merchant, assert_problem, drain, rewrite_feed, sync_now
from tests.integration.console_support import add_user, post, sign_in


def _two_merchants(rt: Runtime, tmp_path: Path) -> tuple[int, int]:
    a = add_feed_merchant(rt, write_feed(tmp_path / "a.csv", 4), name="acme")
    b = add_feed_merchant(rt, write_feed(tmp_path / "b.csv", 3), name="bolt")
    return a, b


def _refused_everywhere(client: FlaskClient, other: int) -> None:
    assert_problem(client.get(f"/console/merchants/{other}"), 404, "not_found")
    assert_problem(client.get(f"/console/merchants/{other}/runs/1"), 404, "not_found")
    assert_problem(client.get(f"/console/merchants/{other}/runs/1.json"), 404, "not_found")
    for action in ("resync", "inbound/replay"):
        assert_problem(
            post(client, f"/console/merchants/{other}/{action}", {"kind": "catalog"}), 404, "not_found"
        )


def test_a_merchant_user_sees_only_its_merchants(rt: Runtime, client: FlaskClient, tmp_path: Path) -> None:
    a, b = _two_merchants(rt, tmp_path)
    run_b = syncs.request_sync(rt, b)
    add_user(rt, "owner@acme.example", "merchant", ("acme",))
    sign_in(client, "owner@acme.example")
    listing = client.get("/console/").get_data(as_text=True)
    assert "acme" in listing and "bolt" not in listing
    assert client.get(f"/console/merchants/{a}").status_code == 200
    _refused_everywhere(client, b)
    assert_problem(client.get(f"/console/merchants/{b}/runs/{run_b.id}.json"), 404, "not_found")
    assert_problem(client.get(f"/console/merchants/{a}/runs/{run_b.id}.json"), 404, "not_found")  # b's run
    for page in ("/console/queues", "/console/webhooks"):
        assert_problem(client.get(page), 403, "forbidden")
    assert_problem(post(client, "/console/queues/jobs/x/retry"), 403, "forbidden")
    assert_problem(post(client, "/console/webhooks/deliveries/1/replay"), 403, "forbidden")


def test_support_sees_every_merchant_and_the_operations_pages(
    rt: Runtime, client: FlaskClient, tmp_path: Path
) -> None:
    a, b = _two_merchants(rt, tmp_path)
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    listing = client.get("/console/").get_data(as_text=True)
    assert "acme" in listing and "bolt" in listing and "<svg" in listing
    for path in (
        f"/console/merchants/{a}",
        f"/console/merchants/{b}",
        "/console/queues",
        "/console/webhooks",
        "/console/live",
    ):
        assert client.get(path).status_code == 200, path


def test_a_console_resync_is_the_clis_run_dry_run_first(
    rt: Runtime, client: FlaskClient, tmp_path: Path
) -> None:
    feed = write_feed(tmp_path / "a.csv", 4)
    merchant_id = add_feed_merchant(rt, feed, name="acme")
    add_user(rt, "owner@acme.example", "merchant", ("acme",))
    sign_in(client, "owner@acme.example")
    page = f"/console/merchants/{merchant_id}"
    assert 'id="dry-run-catalog"' in client.get(page).get_data(as_text=True)

    started = post(client, f"{page}/resync", {"kind": "catalog", "dry_run": "1"}, page=page)
    assert started.status_code == 302
    run_page = started.headers["Location"]
    run_id = int(run_page.rsplit("/", 1)[1])
    queued = client.get(f"{run_page}.json").get_json()
    assert (queued["status"], queued["dry_run"], queued["finished"]) == ("queued", True, False)
    drain(rt)
    done = client.get(f"{run_page}.json").get_json()
    assert (done["status"], done["finished"], done["percent"], done["rows_read"]) == (
        "succeeded",
        True,
        100,
        4,
    )
    assert done["changes"] == 2 and {(row["op"], row["field"]) for row in done["diff"]} == {
        ("created", "title")
    }
    shown = client.get(run_page).get_data(as_text=True)
    assert 'id="diff"' in shown and 'id="apply"' in shown
    assert syncs.get_run(rt, run_id).dry_run

    applied = post(client, f"{page}/resync", {"kind": "catalog", "dry_run": "0"}, page=run_page)
    drain(rt)
    final = client.get(applied.headers["Location"] + ".json").get_json()
    assert (final["status"], final["dry_run"], final["counts"]["created"]) == ("succeeded", False, 4)

    rewrite_feed(feed, lambda i, row: {**row, "price": "99.00 USD"} if i == 0 else row)
    again = post(client, f"{page}/resync", {"kind": "catalog", "dry_run": "1"}, page=page)
    drain(rt)
    diff = client.get(again.headers["Location"] + ".json").get_json()["diff"]
    assert ("updated", "SKU-000001", "99.00 USD") in {(d["op"], d["variant"], d["after"]) for d in diff}


def test_a_one_time_link_signs_in_to_one_merchant_once(
    rt: Runtime, client: FlaskClient, tmp_path: Path
) -> None:
    a, b = _two_merchants(rt, tmp_path)
    with rt.db.session() as session:
        token = users.issue_link(session, a, timedelta(minutes=10))
        stale = users.issue_link(session, a, timedelta(seconds=-1))
    with rt.db.session() as session:
        stored = list(session.scalars(select(ConsoleLink.token_hash)))
    assert token not in stored and len(stored) == 2  # kept hashed

    assert client.get(f"/console/link/{stale}").status_code == 410
    landed = client.get(f"/console/link/{token}")
    assert landed.status_code == 302 and landed.headers["Location"] == f"/console/merchants/{a}"
    assert "acme (sign-in link) · merchant" in client.get(landed.headers["Location"]).get_data(as_text=True)
    _refused_everywhere(client, b)
    assert "bolt" not in client.get("/console/").get_data(as_text=True)

    other = client.application.test_client()
    assert other.get(f"/console/link/{token}").status_code == 410  # used once
    assert other.get(f"/console/merchants/{a}").status_code == 302


def test_the_live_page_shows_pins_and_remaining_allocation_and_refreshes_while_live(
    rt: Runtime, client: FlaskClient, tmp_path: Path
) -> None:
    a, b = _two_merchants(rt, tmp_path)
    sync_now(rt, a)
    with rt.db.session() as session:
        variant = session.scalars(
            select(Variant).where(Variant.merchant_id == a).order_by(Variant.id)
        ).first()
        assert variant is not None
        live = LiveSession(merchant_id=a, title="Friday drop", status="live", creator_ref="cara")
        quiet = LiveSession(merchant_id=b, title="Bolt's evening", status="scheduled")
        session.add_all([live, quiet])
        session.flush()
        pin = LivePin(
            session_id=live.id, variant_id=variant.id, flash_price_minor=1999, currency="USD", allocation=10
        )
        session.add(pin)
        session.flush()
        pin_id = pin.id
    rt.redis.hset(counters.pin_key(pin_id), "n", 7)
    add_user(rt, "owner@acme.example", "merchant", ("acme",))
    sign_in(client, "owner@acme.example")
    page = client.get("/console/live").get_data(as_text=True)
    assert "Friday drop" in page and "Bolt's evening" not in page
    assert 'data-refresh="3"' in page and '<td class="n remaining">7</td>' in page and "19.99 USD" in page
