"""Clicks on creators' links through the web app, real Redis and the database (SQLite and PostgreSQL): the
public redirect, deduplication per visitor, what is not counted, the platform's view and tap reports, the
batched flush, and resolving a click id for attribution."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from connector.affiliates import clicks
from connector.affiliates.click_ids import ClickIds
from connector.infra import runtime
from connector.infra.models import AffiliateClick, AffiliateLink, AffiliateProgram
from connector.scheduler import build_scheduler
from tests.helpers import ApiClient, assert_problem, build_app, make_client
from tests.integration.api_support import add_merchant, add_product

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def add_link(
    rt: runtime.Runtime, client_id: int | None, code: str, *, creator: str = "creator-1"
) -> tuple[int, int]:
    """A creator's link `code` to a new product of a new merchant of `client_id`: (link id, product id)."""
    merchant_id = add_merchant(rt, client_id)
    product_id, _ = add_product(rt, merchant_id)
    now = datetime.now(UTC)
    with rt.db.session() as session:
        program = AffiliateProgram(
            merchant_id=merchant_id,
            kind="open",
            name="Open",
            default_rate_bps=1000,
            attribution_window_seconds=7 * 86400,
            hold_seconds=30 * 86400,
            rate_lock_seconds=30 * 86400,
            status="active",
        )
        session.add(program)
        session.flush()
        link = AffiliateLink(
            code=code,
            merchant_id=merchant_id,
            program_id=program.id,
            creator_ref=creator,
            product_id=product_id,
            locked_rate_bps=1000,
            locked_until=now + timedelta(days=30),
        )
        session.add(link)
        session.flush()
        return link.id, product_id


def rows(rt: runtime.Runtime) -> list[AffiliateClick]:
    with rt.db.session() as session:
        return list(session.scalars(select(AffiliateClick).order_by(AffiliateClick.id)))


def visit(client: FlaskClient, code: str, **headers: str) -> tuple[int, str, str | None]:
    """GET /l/<code>: (status, Location, the sl_click query parameter of the Location)."""
    response = client.get(f"/l/{code}", headers={"User-Agent": BROWSER, **headers})
    location = response.headers.get("Location", "")
    found = parse_qs(urlsplit(location).query).get("sl_click")
    return response.status_code, location, found[0] if found else None


def test_a_click_redirects_to_the_product_page_with_a_signed_click_id(
    rt: runtime.Runtime, client: FlaskClient
) -> None:
    link_id, product_id = add_link(rt, None, "tee-abc123")

    response = client.get("/l/tee-abc123", headers={"User-Agent": BROWSER})

    assert response.status_code == 302
    location = response.headers["Location"]
    click_id = parse_qs(urlsplit(location).query)["sl_click"][0]
    assert location == f"https://platform.example/products/{product_id}?sl_click={click_id}"
    assert response.headers["Cache-Control"] == "no-store"
    cookies = response.headers.getlist("Set-Cookie")
    assert any(
        c.startswith(f"sl_click={click_id};") and "HttpOnly" in c and "SameSite=Lax" in c for c in cookies
    )
    ref = clicks.click_ids(rt).verify(click_id)
    assert ref is not None and ref.link_id == link_id and ref.kind == "click"
    assert abs(ref.occurred_at - datetime.now(UTC)) < timedelta(minutes=1)

    assert rows(rt) == []  # buffered in Redis, not written in the request
    assert clicks.flush(rt) == 1
    (row,) = rows(rt)
    assert (row.click_id, row.link_id, row.kind) == (click_id, link_id, "click")
    assert row.visitor_hash is not None and len(row.visitor_hash) == 32
    assert "127.0.0.1" not in row.visitor_hash


def test_a_visitor_counts_once_per_link_within_the_window(rt: runtime.Runtime, client: FlaskClient) -> None:
    add_link(rt, None, "one")
    add_link(rt, None, "two", creator="creator-2")

    _, _, first = visit(client, "one")
    _, _, again = visit(client, "one")
    _, _, other_link = visit(client, "two")
    # the visitor cookie keeps the visitor the same when the browser's user agent changes
    _, _, new_agent = visit(client, "one", **{"User-Agent": BROWSER + " Version/18.1"})
    fresh = FlaskClient(client.application, use_cookies=False)
    _, _, other_visitor = visit(fresh, "one", **{"User-Agent": BROWSER + " Other"})
    # the platform's visitor id wins over the browser's
    _, _, named = visit(fresh, "one", **{"X-Platform-Visitor": "user-42"})
    _, _, named_again = visit(
        fresh, "one", **{"X-Platform-Visitor": "user-42", "User-Agent": "Mozilla/5.0 X"}
    )

    assert first is not None and first == again == new_agent
    assert len({first, other_link, other_visitor, named}) == 4
    assert named_again == named
    assert clicks.flush(rt) == 4
    assert sorted(row.click_id for row in rows(rt)) == sorted([first, other_link, other_visitor, named])


def test_web_processes_of_one_redis_count_a_visitor_once(rt: runtime.Runtime, client: FlaskClient) -> None:
    add_link(rt, None, "shared")
    other = runtime.Runtime(settings=rt.settings, redis_url=rt.redis_url)  # another web worker
    try:
        second = FlaskClient(build_app(other), use_cookies=False)
        first = FlaskClient(client.application, use_cookies=False)
        _, _, a = visit(first, "shared", **{"X-Platform-Visitor": "v-1"})
        _, _, b = visit(second, "shared", **{"X-Platform-Visitor": "v-1"})
        _, _, c = visit(first, "shared", **{"X-Platform-Visitor": "v-1"})
        _, _, d = visit(second, "shared", **{"X-Platform-Visitor": "v-2"})
        _, _, e = visit(first, "shared", **{"X-Platform-Visitor": "v-2"})
    finally:
        other.close()
        runtime.install(rt)

    assert a is not None and a == b == c
    assert d is not None and d == e != a
    assert clicks.flush(rt) == 2


def test_a_visit_after_the_window_counts_again(rt: runtime.Runtime) -> None:
    add_link(rt, None, "short")
    quick = runtime.Runtime(
        settings=rt.settings.model_copy(update={"affiliate_click_dedupe_seconds": 1}), redis_url=rt.redis_url
    )
    try:
        client = build_app(quick).test_client()
        _, _, first = visit(client, "short")
        _, _, repeat = visit(client, "short")
        time.sleep(1.5)
        _, _, later = visit(client, "short")
        assert first == repeat and later is not None and later != first
        assert clicks.flush(quick) == 2
    finally:
        quick.close()
        runtime.install(rt)


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"User-Agent": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"},
        {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        {"User-Agent": "WhatsApp/2.23.20.0"},
        {"User-Agent": "Twitterbot/1.0"},
        {"User-Agent": "curl/8.5.0"},
        {"User-Agent": ""},
        {"User-Agent": BROWSER, "Sec-Purpose": "prefetch;prerender"},
        {"User-Agent": BROWSER, "Purpose": "prefetch"},
        {"User-Agent": BROWSER, "X-Moz": "prefetch"},
    ],
    ids=[
        "googlebot",
        "facebook",
        "slack",
        "whatsapp",
        "twitter",
        "curl",
        "no-agent",
        "sec-purpose",
        "purpose",
        "x-moz",
    ],
)
def test_bots_and_prefetches_are_redirected_but_not_counted(
    rt: runtime.Runtime, client: FlaskClient, headers: dict[str, str]
) -> None:
    _, product_id = add_link(rt, None, "seen")

    response = client.get("/l/seen", headers=headers)

    assert response.status_code == 302
    assert response.headers["Location"] == f"https://platform.example/products/{product_id}"
    assert not any(c.startswith("sl_click=") for c in response.headers.getlist("Set-Cookie"))
    assert clicks.buffered(rt) == 0 and clicks.flush(rt) == 0 and rows(rt) == []


def test_a_head_request_is_redirected_but_not_counted(rt: runtime.Runtime, client: FlaskClient) -> None:
    _, product_id = add_link(rt, None, "head")

    response = client.head("/l/head", headers={"User-Agent": BROWSER})

    assert response.status_code == 302
    assert response.headers["Location"] == f"https://platform.example/products/{product_id}"
    assert clicks.buffered(rt) == 0


def test_an_unknown_code_is_a_404_problem(rt: runtime.Runtime, client: FlaskClient) -> None:
    add_link(rt, None, "known")

    body = assert_problem(
        client.get("/l/unknown", headers={"User-Agent": BROWSER}), 404, "affiliate_link_not_found"
    )
    assert "unknown" in body["detail"]
    assert_problem(client.get("/l/" + "a" * 25), 404, "not_found")
    assert_problem(client.get("/l/bad%20code"), 404, "affiliate_link_not_found")
    assert clicks.buffered(rt) == 0


def test_a_redirect_has_a_request_id_a_quiet_access_line_and_its_route_in_the_metrics(
    rt: runtime.Runtime, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    add_link(rt, None, "seen-by-ops")
    caplog.set_level(logging.DEBUG, logger="connector.web.context")

    response = client.get("/l/seen-by-ops", headers={"User-Agent": BROWSER, "X-Request-Id": "visit-1"})

    assert response.status_code == 302 and response.headers["X-Request-Id"] == "visit-1"
    (line,) = [r for r in caplog.records if r.getMessage() == "request"]
    assert line.levelno == logging.DEBUG  # a click is a row of its own: no access line at INFO
    assert (line.method, line.path, line.status) == ("GET", "/l/seen-by-ops", 302)  # type: ignore[attr-defined]
    text = client.get("/metrics").get_data(as_text=True)
    route = 'endpoint="/l/<string(maxlength=24):code>",method="GET",status="302"'
    assert f"storelink_http_requests_total{{{route}}}" in text


def test_a_redirect_that_fails_is_a_problem_document(
    rt: runtime.Runtime, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_link(rt, None, "db-down")

    def unreachable(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("the database is unreachable"))

    monkeypatch.setattr(clicks, "find_link", unreachable)

    assert_problem(client.get("/l/db-down", headers={"User-Agent": BROWSER}), 500, "internal_error")
    assert clicks.buffered(rt) == 0


def test_a_landing_url_template_with_characters_outside_uris_is_sent_encoded(rt: runtime.Runtime) -> None:
    _, product_id = add_link(rt, None, "iri")
    with _landing(rt, "https://shop.example/boutique/é/{product_id}?c={click_id}") as client:
        location = client.get("/l/iri", headers={"User-Agent": BROWSER}).headers["Location"]
        click_id = parse_qs(urlsplit(location).query)["c"][0]
        assert location == f"https://shop.example/boutique/%C3%A9/{product_id}?c={click_id}"


def test_the_landing_url_template_is_a_setting(rt: runtime.Runtime) -> None:
    _, product_id = add_link(rt, None, "tmpl")
    with _landing(rt, "https://shop.example/p/{product_id}/{code}?c={click_id}&src=sl") as client:
        location = client.get("/l/tmpl", headers={"User-Agent": BROWSER}).headers["Location"]
        click_id = parse_qs(urlsplit(location).query)["c"][0]
        assert location == f"https://shop.example/p/{product_id}/tmpl?c={click_id}&src=sl"
        bot = client.get("/l/tmpl", headers={"User-Agent": "Googlebot/2.1"}).headers["Location"]
        assert bot == f"https://shop.example/p/{product_id}/tmpl?src=sl"


@contextlib.contextmanager
def _landing(rt: runtime.Runtime, template: str) -> Iterator[FlaskClient]:
    """A test client of the app with `template` as its landing URL; `rt` is the current runtime again after."""
    custom = runtime.Runtime(
        settings=rt.settings.model_copy(update={"affiliate_landing_url": template}), redis_url=rt.redis_url
    )
    try:
        yield build_app(custom).test_client()
    finally:
        custom.close()
        runtime.install(rt)


def test_a_click_is_written_directly_while_redis_is_unreachable(rt: runtime.Runtime) -> None:
    link_id, _ = add_link(rt, None, "noredis")
    down = runtime.Runtime(settings=rt.settings, redis_url="redis://127.0.0.1:1/0")
    try:
        client = build_app(down).test_client()
        status, _, click_id = visit(client, "noredis")
        assert status == 302 and click_id is not None
    finally:
        down.close()
        runtime.install(rt)
    (row,) = rows(rt)
    assert (row.click_id, row.link_id) == (click_id, link_id)


# --- the platform's reports --------------------------------------------------------------------------------


def report(client: FlaskClient, api: ApiClient, code: str, body: object) -> TestResponse:
    return client.post(f"/v1/affiliate-links/{code}/interactions", json=body, headers=api.headers)


def test_the_platform_reports_views_and_taps(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    link_id, _ = add_link(rt, api_client.id, "rep")
    seen_at = datetime.now(UTC) - timedelta(minutes=3)

    view = report(
        client, api_client, "rep", {"kind": "view", "visitor": "user-7", "occurred_at": seen_at.isoformat()}
    )
    again = report(client, api_client, "rep", {"kind": "view", "visitor": "user-7"})
    tap = report(client, api_client, "rep", {"kind": "tap", "visitor": "user-7"})
    other = report(client, api_client, "rep", {"kind": "view", "visitor": "user-8"})

    assert view.status_code == 202, view.get_json()
    first = view.get_json()
    assert first["kind"] == "view" and first["code"] == "rep" and first["duplicate"] is False
    assert abs(datetime.fromisoformat(first["occurred_at"]) - seen_at) < timedelta(milliseconds=2)
    assert again.get_json()["duplicate"] is True and again.get_json()["click_id"] == first["click_id"]
    assert tap.get_json()["duplicate"] is False and tap.get_json()["click_id"] != first["click_id"]
    assert other.get_json()["duplicate"] is False
    assert clicks.flush(rt) == 3
    recorded = {row.click_id: row for row in rows(rt)}
    assert {row.kind for row in recorded.values()} == {"view", "tap"}
    assert abs(recorded[first["click_id"]].occurred_at - seen_at) < timedelta(milliseconds=2)
    assert all(row.link_id == link_id for row in recorded.values())


def test_bad_reports_are_problems_and_record_nothing(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    add_link(rt, api_client.id, "mine")
    other = make_client(rt, "platform-b")
    add_link(rt, other.id, "theirs", creator="creator-9")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()

    assert_problem(
        client.post("/v1/affiliate-links/mine/interactions", json={"kind": "view", "visitor": "u"}),
        401,
        "unauthorized",
    )
    assert_problem(
        report(client, api_client, "theirs", {"kind": "view", "visitor": "u"}),
        404,
        "affiliate_link_not_found",
    )
    assert_problem(
        report(client, api_client, "nope", {"kind": "view", "visitor": "u"}), 404, "affiliate_link_not_found"
    )
    for body, field in (
        ({"kind": "click", "visitor": "u"}, "kind"),
        ({"kind": "view"}, "visitor"),
        ({"kind": "view", "visitor": ""}, "visitor"),
        ({"kind": "view", "visitor": "a\nb"}, "visitor"),
        ({"kind": "view", "visitor": "u", "occurred_at": future}, "occurred_at"),
        ({"kind": "view", "visitor": "u", "occurred_at": old}, "occurred_at"),
        ({"kind": "view", "visitor": "u", "extra": 1}, "extra"),
    ):
        problem = assert_problem(report(client, api_client, "mine", body), 422, "invalid_request")
        assert [error["field"] for error in problem["errors"]] == [field], problem
    assert_problem(
        client.post(
            "/v1/affiliate-links/mine/interactions",
            data="{",
            headers={**api_client.headers, "Content-Type": "application/json"},
        ),
        400,
        "malformed_json",
    )
    assert_problem(
        client.post("/v1/affiliate-links/mine/interactions", data="kind=view", headers=api_client.headers),
        415,
        "unsupported_media_type",
    )
    assert clicks.buffered(rt) == 0


# --- flushing and resolving --------------------------------------------------------------------------------


def test_flushing_twice_writes_each_click_once(rt: runtime.Runtime, client: FlaskClient) -> None:
    add_link(rt, None, "flush")
    for n in range(5):
        visit(client, "flush", **{"X-Platform-Visitor": f"v{n}"})
    buffered = rt.redis.lrange(clicks.BUFFER, 0, -1)
    assert len(buffered) == 5

    assert clicks.flush(rt, batch=2) == 5
    # a flusher killed after its commit, before trimming the buffer: the same clicks are flushed again
    rt.redis.rpush(clicks.BUFFER, *buffered)
    assert clicks.flush(rt) == 5

    assert len(rows(rt)) == 5 and clicks.buffered(rt) == 0


def test_resolve_click_validates_and_finds_flushed_and_buffered_clicks(
    rt: runtime.Runtime, client: FlaskClient
) -> None:
    link_id, _ = add_link(rt, None, "res")
    _, _, flushed = visit(client, "res", **{"X-Platform-Visitor": "a"})
    clicks.flush(rt)
    _, _, buffered = visit(client, "res", **{"X-Platform-Visitor": "b"})
    assert flushed and buffered

    with rt.db.session() as session:
        found = clicks.resolve_click(session, flushed)
        assert found is not None and found.click_id == flushed and found.visitor_hash is not None
        pending = clicks.resolve_click(session, buffered)
        assert pending is not None and (pending.click_id, pending.link_id, pending.kind) == (
            buffered,
            link_id,
            "click",
        )
        tampered = buffered[:-2] + ("AA" if buffered[-2:] != "AA" else "BB")
        assert clicks.resolve_click(session, tampered) is None
        assert clicks.resolve_click(session, "not-a-click-id") is None
        assert clicks.resolve_click(session, "") is None
        stranger = ClickIds([os.urandom(32)]).issue(link_id, "click", datetime.now(UTC))
        assert clicks.resolve_click(session, stranger) is None
        ahead = clicks.click_ids(rt).issue(link_id, "click", datetime.now(UTC) + timedelta(hours=1))
        assert clicks.resolve_click(session, ahead) is None
        assert clicks.resolve_click(session, ahead, now=datetime.now(UTC) + timedelta(hours=1)) is not None
        gone = clicks.click_ids(rt).issue(link_id + 1000, "click", datetime.now(UTC))
        assert clicks.resolve_click(session, gone) is None
        garbled = base64.urlsafe_b64encode(os.urandom(36)).decode()
        assert clicks.resolve_click(session, garbled) is None

    # the buffered click's row was written by resolving it; the flush completes it and adds nothing
    assert clicks.flush(rt) == 1
    by_id = {row.click_id: row for row in rows(rt)}
    assert set(by_id) == {flushed, buffered, ahead}
    assert by_id[buffered].visitor_hash is not None


def test_the_scheduler_flushes_clicks_every_few_seconds(rt: runtime.Runtime) -> None:
    scheduled = {job.func: job.interval for job in build_scheduler(rt).get_jobs()}
    assert scheduled[clicks.flush_job] == rt.settings.affiliate_click_flush_seconds


def test_clicks_of_a_link_deleted_before_the_flush_are_dropped(
    rt: runtime.Runtime, client: FlaskClient
) -> None:
    link_id, _ = add_link(rt, None, "gone")
    keep_id, _ = add_link(rt, None, "kept", creator="creator-3")
    visit(client, "gone")
    visit(client, "kept")
    with rt.db.session() as session:
        session.delete(session.get(AffiliateLink, link_id))

    assert clicks.flush(rt) == 2
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(AffiliateClick)) == 1
    assert [row.link_id for row in rows(rt)] == [keep_id]


def test_the_openapi_document_has_the_redirect_and_the_reports(client: FlaskClient) -> None:
    paths = client.get("/v1/openapi.json").get_json()["paths"]

    follow = paths["/l/{code}"]["get"]
    assert follow["operationId"] == "followAffiliateLink" and follow["security"] == []
    assert set(follow["responses"]) == {"302", "404"}
    assert "Location" in follow["responses"]["302"]["headers"]
    assert "affiliate_link_not_found" in follow["responses"]["404"]["description"]
    assert follow["parameters"][0]["schema"]["maxLength"] == 24
    interactions = paths["/v1/affiliate-links/{code}/interactions"]["post"]
    assert interactions["operationId"] == "reportAffiliateLinkInteraction"
    assert {"202", "401", "404", "422"} <= set(interactions["responses"])
