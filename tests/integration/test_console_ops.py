"""The console over HTTP, joined to the operations side: the problem list on the merchants and merchant pages
(a merchant user sees only its merchants' problems, support also the endpoints' and the cleared ones),
resync refusals said as messages, and each resync kind's dry run with its table of changes, against feeds and
the Shopify emulator with a real worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis

from config.settings import Settings
from connector.bench.shopify import create_orders
from connector.catalog import syncs
from connector.infra import problems, runtime
from connector.infra.store_adapters import build_adapter
from connector.orders import push, reconciliation
from connector.sandbox.feeds import write_feed
from tests.helpers import add_feed_merchant, assert_problem, build_app, drain, sync_now
from tests.integration.console_support import add_user, post, sign_in
from tests.integration.ops_support import Shop, runtime_with, shopify_shop, variant_ids
from webhooks.outbound.endpoints import create_endpoint

PROBLEM = re.compile(r'data-problem="([a-z_]+)"')


def _page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_data(as_text=True)


def _failing_endpoint(rt: runtime.Runtime) -> int:
    """An outbound endpoint whose deliveries failed often enough to show its problem."""
    with rt.db.session() as session:
        endpoint_id = create_endpoint(
            session, rt.secrets, url="http://127.0.0.1:9/hooks", event_types=["*"], allow_private=True
        ).endpoint.id
    for _ in range(problems.CAUSES[problems.ENDPOINT_FAILING].after):
        problems.report(rt.db, problems.ENDPOINT_FAILING, endpoint_id=endpoint_id, detail="HTTP 502")
    return endpoint_id


def test_a_merchant_user_sees_only_its_merchants_problems(
    rt: runtime.Runtime, client: FlaskClient, tmp_path: Path
) -> None:
    acme_feed, bolt_feed = tmp_path / "acme-feed.csv", tmp_path / "bolt-feed.csv"
    acme = add_feed_merchant(rt, acme_feed, name="acme")
    bolt = add_feed_merchant(rt, bolt_feed, name="bolt")
    assert sync_now(rt, acme).status == "failed" and sync_now(rt, bolt).status == "failed"  # no feed files
    endpoint_id = _failing_endpoint(rt)
    add_user(rt, "owner@acme.example", "merchant", ("acme",))
    add_user(rt, "support@example.com")

    sign_in(client, "owner@acme.example")
    listing = _page(client, "/console/")
    assert PROBLEM.findall(listing) == ["store_unreachable"]
    assert "acme-feed.csv" in listing and "bolt-feed.csv" not in listing
    assert "Store or feed unreachable" in listing and "What to do:" in listing and "seen 1 time" in listing
    assert "endpoint-problems" not in listing and "127.0.0.1:9" not in listing
    mine = _page(client, f"/console/merchants/{acme}")
    assert PROBLEM.findall(mine) == ["store_unreachable"] and "bolt-feed.csv" not in mine
    assert "problem-history" not in mine  # the history is support's
    assert_problem(client.get(f"/console/merchants/{bolt}"), 404, "not_found")
    assert_problem(client.get("/console/webhooks"), 403, "forbidden")

    other = build_app(rt).test_client()
    sign_in(other, "support@example.com")
    listing = _page(other, "/console/")
    assert sorted(PROBLEM.findall(listing)) == ["store_unreachable", "store_unreachable"]
    assert "acme-feed.csv" in listing and "bolt-feed.csv" in listing
    assert 'id="endpoint-problems"' in listing and "1 webhook endpoint problem" in listing
    hooks = _page(other, "/console/webhooks")
    assert PROBLEM.findall(hooks) == ["endpoint_failing"] and f"endpoint {endpoint_id}" in hooks
    assert f'data-endpoint="{endpoint_id}" class="has-problem"' in hooks

    acme_feed.write_text("id,title,price,availability,quantity\n1,Tee,10.00 USD,in_stock,3\n")
    assert sync_now(rt, acme).status == "succeeded"  # the cause is gone: the problem clears
    page = _page(other, f"/console/merchants/{acme}")
    assert PROBLEM.findall(page) == [] and 'id="no-problems"' in page
    assert 'data-cleared="store_unreachable"' in page  # support sees it in the history
    assert PROBLEM.findall(_page(other, "/console/")) == ["store_unreachable"]  # bolt's, still open


def _flash(client: FlaskClient, answer: object, page: str) -> str:
    assert getattr(answer, "status_code", None) == 302
    assert getattr(answer, "headers", {})["Location"] == page + "#resync"
    shown = _page(client, page)
    found = re.search(r'<p class="flash error" role="status">([^<]*)</p>', shown)
    assert found, "the refusal is said on the page"
    return found.group(1).replace("&#39;", "'")


def test_a_refused_resync_is_a_message_on_the_merchants_page(
    rt: runtime.Runtime, client: FlaskClient, tmp_path: Path
) -> None:
    merchant_id = add_feed_merchant(rt, write_feed(tmp_path / "a.csv", 3), name="acme")
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    page = f"/console/merchants/{merchant_id}"
    shown = _page(client, page)
    assert '<button type="button" disabled id="dry-run-orders">' in shown
    assert "Not available: merchant acme: its store takes no orders" in shown
    assert 'id="dry-run-catalog">' in shown and 'id="dry-run-inventory">' in shown

    refused = {
        ("orders", ""): "orders resync not started: merchant acme: its store takes no orders",
        ("everything", ""): "everything resync not started: unknown resync kind 'everything'",
        ("catalog", "2026-01-01T00:00"): "catalog resync not started: since applies to an orders resync only",
        ("orders", "soon"): "orders resync not started: since: 'soon' is not an ISO 8601 time",
    }
    for (kind, since), message in refused.items():
        answer = post(client, f"{page}/resync", {"kind": kind, "dry_run": "1", "since": since}, page=page)
        assert _flash(client, answer, page).startswith(message), kind
    with rt.db.session() as session:
        assert syncs.list_runs(session, merchant_id=merchant_id) == []


@pytest.fixture
def shop_rt(settings: Settings, redis: Redis) -> Iterator[runtime.Runtime]:
    yield from runtime_with(settings, redis)


@pytest.fixture
def shop(shop_rt: runtime.Runtime) -> Iterator[Shop]:
    yield from shopify_shop(shop_rt, products=2, variants=2)


def _dry_run(client: FlaskClient, page: str, kind: str, since: str = "") -> str:
    """Press a kind's Dry run; the run's page."""
    answer = post(client, f"{page}/resync", {"kind": kind, "dry_run": "1", "since": since}, page=page)
    assert answer.status_code == 302 and "/runs/" in answer.headers["Location"], answer.headers
    return str(answer.headers["Location"])


def _finished(rt: runtime.Runtime, client: FlaskClient, run_page: str) -> dict[str, Any]:
    drain(rt)
    done: dict[str, Any] = client.get(run_page + ".json").get_json()
    assert done["status"] == "succeeded" and done["finished"] and done["fraction"] == 1.0, done
    return done


def _lost_answer(rt: runtime.Runtime, order_id: int) -> None:
    """Place the order in the store as a push whose worker died before recording the answer would."""
    claimed = push.claim_attempt(rt, order_id)
    assert claimed is not None
    attempt, order, merchant = claimed
    build_adapter(merchant, rt.secrets, rt.settings).create_order(order, push.push_key(order.id))
    push.release_attempt(rt, order_id, attempt)


def test_inventory_and_orders_dry_runs_show_their_own_tables_and_reconciliation_is_a_run(
    shop_rt: runtime.Runtime, shop: Shop
) -> None:
    rt = shop_rt
    client = build_app(rt).test_client()
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    page = f"/console/merchants/{shop.merchant_id}"
    first, *_ = variant_ids(rt, shop.merchant_id)
    shop.set_store_stock(rt, first, 3)

    run_page = _dry_run(client, page, "inventory")
    done = _finished(rt, client, run_page)
    assert (done["total"], done["done"], done["unit"]) == (4, 4, "variants")
    assert done["counts"] == {
        "variants compared": 4,
        "stock differences": 1,
        "same": 3,
        "not in the store": 0,
    }
    assert [c["label"] for c in done["columns"]] == ["variant", "SKU", "stored", "in the store", "difference"]
    assert [(d["stored"], d["store"], d["difference"]) for d in done["diff"]] == [("10", "3", "-7")]
    shown = _page(client, run_page)
    assert (
        "Would change (1)" in shown and '<td class="c-difference">-7</td>' in shown and 'id="apply"' in shown
    )

    placed, _ = create_orders(rt, shop.merchant_id, variant_ids(rt, shop.merchant_id), 2)
    _lost_answer(rt, placed)
    run_page = _dry_run(client, page, "orders")
    done = _finished(rt, client, run_page)
    actions = {d["action"] for d in done["diff"]}
    assert actions == {"confirm (accepted → confirmed)", "push to the store"}, done["diff"]
    assert done["counts"]["accepted orders"] == 2
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    run_page = _dry_run(client, page, "orders", since=later)
    done = _finished(rt, client, run_page)
    assert done["since"] and done["changes"] == 0 and done["total"] == 0
    assert "Nothing would change." in _page(client, run_page)

    [reconcile] = reconciliation.schedule_all(rt)
    drain(rt)
    runs = _page(client, page)
    row = re.search(rf'<tr data-run="{reconcile}" data-kind="reconcile">(.*?)</tr>', runs, re.S)
    assert row, runs
    assert "succeeded" in row.group(1) and "stock: " in row.group(1), row.group(1)
    assert {"compared 4", "drift 1", "fixed 1"} <= set(re.findall(r"[a-z]+ \d+", row.group(1))), row.group(1)
    assert "Reconciliation" in _page(client, f"{page}/runs/{reconcile}")
