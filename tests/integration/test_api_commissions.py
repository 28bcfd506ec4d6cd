"""A merchant's commissions through the Platform API: filtered pages with totals, one entry with its history,
and the streamed CSV export; bad filters are problems; another client's entries are never seen."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.affiliates import export
from connector.domain.money import exponent
from connector.infra import runtime
from connector.infra.models import CommissionEntry
from tests.helpers import ApiClient, ServedApp, assert_problem, make_client
from tests.integration.ledger_seed import (
    NOW,
    Shop,
    add_entry,
    add_link,
    add_order,
    add_payout,
    add_shop,
)


def _get(client: FlaskClient, api: ApiClient, path: str, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=api.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


class Ledger:
    """Two creators' entries at a shop of the client, over three days, and one at another client's shop."""

    def __init__(self, rt: runtime.Runtime, api: ApiClient) -> None:
        self.shop: Shop = add_shop(rt, api.id, name="north")
        self.second: Shop = add_shop(rt, api.id, name="south")
        self.link, self.code = add_link(rt, self.shop, "creator-1")
        payout = add_payout(rt, "creator-1")
        order = add_order(rt, self.shop)
        days = [NOW - timedelta(days=2), NOW - timedelta(days=1), NOW]
        self.paid, self.paid_id = add_entry(
            rt, self.shop, "creator-1", 2000, state="paid", link_id=self.link, order=order,
            payout_id=payout, created_at=days[0], skewed=True,
        )  # fmt: skip
        self.reversal = add_entry(
            rt, self.shop, "creator-1", -500, link_id=self.link, order=order, reverses=self.paid,
            created_at=days[1],
        )[1]  # fmt: skip
        self.approved = add_entry(rt, self.shop, "creator-2", 700, state="approved", created_at=days[1])[1]
        self.pending = add_entry(rt, self.shop, "creator-1", 1234, link_id=self.link, created_at=days[2])[1]
        self.yen = add_entry(rt, self.second, "creator-1", 150, currency="JPY", created_at=days[2])[1]
        self.foreign = add_entry(rt, add_shop(rt, make_client(rt, "platform-b").id), "creator-1", 99)[1]
        self.days = days


@pytest.fixture
def shop(rt: runtime.Runtime, api_client: ApiClient) -> Shop:
    return add_shop(rt, api_client.id)


@pytest.fixture
def ledger(rt: runtime.Runtime, api_client: ApiClient) -> Ledger:
    return Ledger(rt, api_client)


def _ids(body: Any) -> list[str]:
    return [entry["id"] for entry in body["data"]]


def test_commissions_are_listed_newest_first_with_totals_per_creator(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger
) -> None:
    body = _get(client, api_client, "/v1/commissions")
    assert _ids(body) == [ledger.yen, ledger.pending, ledger.approved, ledger.reversal, ledger.paid_id]
    reversal = body["data"][3]
    assert reversal["kind"] == "reversal" and reversal["amount_minor"] == -500
    assert reversal["reverses"] == ledger.paid_id and reversal["link_code"] == ledger.code
    paid = body["data"][4]
    assert (
        paid["state"] == "paid"
        and paid["payout_id"].startswith("po_")
        and paid["order_id"].startswith("ord_")
    )
    assert body["totals"] == [
        {
            "creator_ref": "creator-1",
            "currency": "JPY",
            "pending_minor": 150,
            "approved_minor": 0,
            "paid_minor": 0,
            "balance_minor": 150,
            "total_minor": 150,
            "entries": 1,
        },
        {
            "creator_ref": "creator-1",
            "currency": "USD",
            "pending_minor": 734,
            "approved_minor": 0,
            "paid_minor": 2000,
            "balance_minor": 734,
            "total_minor": 2734,
            "entries": 3,
        },
        {
            "creator_ref": "creator-2",
            "currency": "USD",
            "pending_minor": 0,
            "approved_minor": 700,
            "paid_minor": 0,
            "balance_minor": 700,
            "total_minor": 700,
            "entries": 1,
        },
    ]


def test_commissions_filter_by_merchant_creator_state_kind_and_period(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger
) -> None:
    def ids(**params: Any) -> list[str]:
        return _ids(_get(client, api_client, "/v1/commissions", **params))

    assert ids(merchant_id=ledger.second.merchant_id) == [ledger.yen]
    assert ids(creator_ref="creator-2") == [ledger.approved]
    assert ids(state="pending") == [ledger.yen, ledger.pending, ledger.reversal]
    assert ids(kind="reversal") == [ledger.reversal]
    assert ids(since=ledger.days[1].isoformat(), until=ledger.days[2].isoformat()) == [
        ledger.approved,
        ledger.reversal,
    ]
    naive = ledger.days[2].replace(tzinfo=None).isoformat()  # no offset: UTC
    assert ids(since=naive, merchant_id=ledger.shop.merchant_id) == [ledger.pending]
    narrowed = _get(client, api_client, "/v1/commissions", creator_ref="creator-1", state="pending")
    assert [(t["currency"], t["balance_minor"]) for t in narrowed["totals"]] == [("JPY", 150), ("USD", 734)]


def test_commission_pages_follow_the_cursor_and_keep_the_totals(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger
) -> None:
    first = _get(client, api_client, "/v1/commissions", limit=2)
    assert _ids(first) == [ledger.yen, ledger.pending]
    second = _get(client, api_client, "/v1/commissions", limit=2, cursor=first["next_cursor"])
    third = _get(client, api_client, "/v1/commissions", limit=2, cursor=second["next_cursor"])
    assert _ids(second) + _ids(third) == [ledger.approved, ledger.reversal, ledger.paid_id]
    assert third["next_cursor"] is None
    assert first["totals"] == third["totals"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"state": "cancelled"}, 422, "invalid_request"),
        ({"kind": "bonus"}, 422, "invalid_request"),
        ({"since": "2026-13-01"}, 422, "invalid_request"),
        ({"until": "last week"}, 422, "invalid_request"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422, "invalid_request"),
        ({"merchant_id": "0"}, 422, "invalid_request"),
        ({"cursor": "!!"}, 422, "invalid_request"),
        ({"merchant_id": "999999"}, 404, "merchant_not_found"),
    ],
)
def test_bad_commission_filters_are_problems(
    client: FlaskClient, api_client: ApiClient, params: dict[str, str], status: int, code: str
) -> None:
    for path in ("/v1/commissions", "/v1/commissions/export.csv"):
        if path.endswith(".csv") and "cursor" in params:
            continue
        assert_problem(client.get(path, query_string=params, headers=api_client.headers), status, code)


def test_another_clients_merchant_and_entries_are_not_found(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger, rt: runtime.Runtime
) -> None:
    foreign_merchant = add_shop(rt, make_client(rt, "platform-c").id).merchant_id
    for path in ("/v1/commissions", "/v1/commissions/export.csv"):
        assert_problem(
            client.get(path, query_string={"merchant_id": foreign_merchant}, headers=api_client.headers),
            404,
            "merchant_not_found",
        )
    assert ledger.foreign not in _ids(_get(client, api_client, "/v1/commissions"))
    for public_id in (ledger.foreign, "com_unknown", "no.such"):
        assert_problem(
            client.get(f"/v1/commissions/{public_id}", headers=api_client.headers),
            404,
            "commission_not_found",
        )
    assert_problem(client.get("/v1/commissions"), 401, "unauthorized")
    assert_problem(client.get("/v1/commissions/export.csv"), 401, "unauthorized")


def test_an_entry_comes_with_its_refs_reversals_and_history_in_the_order_it_was_made(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger
) -> None:
    body = _get(client, api_client, f"/v1/commissions/{ledger.paid_id}")
    assert body["entry"]["id"] == ledger.paid_id and body["entry"]["amount_minor"] == 2000
    assert body["order"]["id"] == body["entry"]["order_id"] and body["order"]["status"] == "confirmed"
    assert body["line"]["id"] == body["entry"]["order_line_id"] and body["line"]["quantity"] == 2
    assert body["link"]["code"] == ledger.code and body["link"]["product_id"] == ledger.shop.product_id
    assert body["program"] == {"id": ledger.shop.program_id, "name": "Open to all", "kind": "open"}
    assert body["reversed_by"] == [ledger.reversal]
    history = body["history"]
    assert [(step["from_state"], step["to_state"]) for step in history] == [
        (None, "pending"),
        ("pending", "approved"),
        ("approved", "paid"),
    ]  # the order the changes were made in, though the payout's clock put it before the approval
    assert history[2]["at"] < history[1]["at"]
    assert history[2]["payout_id"] == body["entry"]["payout_id"] and history[0]["payout_id"] is None

    live = _get(client, api_client, f"/v1/commissions/{ledger.approved}")
    assert live["link"] is None and live["entry"]["attribution_ref"] == "live:1" and live["reversed_by"] == []


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_csv_export_streams_every_entry_in_the_stable_columns(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger
) -> None:
    response = client.get("/v1/commissions/export.csv", headers=api_client.headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    rows = _rows(response.get_data(as_text=True))
    assert rows[0] == [
        "entry_id", "created_at", "merchant_id", "creator_ref", "program_id", "link_code", "order_id",
        "platform_order_id", "order_line_id", "kind", "cause", "reverses_entry_id", "state", "currency",
        "rate_bps", "base_minor", "base", "amount_minor", "amount", "hold_until", "approved_at", "paid_at",
        "payout_id",
    ]  # fmt: skip
    entries = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [entry["entry_id"] for entry in entries] == [
        ledger.paid_id, ledger.reversal, ledger.approved, ledger.pending, ledger.yen,
    ]  # fmt: skip
    # creation order, then id order for entries made at the same moment
    by_id = {entry["entry_id"]: entry for entry in entries}
    paid, reversal, yen = by_id[ledger.paid_id], by_id[ledger.reversal], by_id[ledger.yen]
    assert (paid["amount_minor"], paid["amount"], paid["base"], paid["state"]) == (
        "2000",
        "20.00",
        "200.00",
        "paid",
    )
    assert (
        paid["created_at"].endswith("Z")
        and paid["paid_at"].endswith("Z")
        and paid["payout_id"].startswith("po_")
    )
    assert (reversal["amount_minor"], reversal["amount"], reversal["reverses_entry_id"]) == (
        "-500",
        "-5.00",
        ledger.paid_id,
    )
    assert reversal["approved_at"] == "" and reversal["kind"] == "reversal"
    assert (yen["currency"], yen["amount_minor"], yen["amount"]) == ("JPY", "150", "150")
    assert by_id[ledger.pending]["link_code"] == ledger.code and by_id[ledger.approved]["link_code"] == ""


def test_the_csv_export_takes_the_listing_filters(
    client: FlaskClient, api_client: ApiClient, ledger: Ledger
) -> None:
    def exported(**params: Any) -> list[str]:
        response = client.get("/v1/commissions/export.csv", query_string=params, headers=api_client.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [row[0] for row in _rows(response.get_data(as_text=True))[1:]]

    assert exported(merchant_id=ledger.second.merchant_id) == [ledger.yen]
    assert exported(creator_ref="creator-1", state="pending", kind="accrual") == [ledger.pending, ledger.yen]
    assert exported(until=ledger.days[1].isoformat()) == [ledger.paid_id]
    assert exported(creator_ref="nobody") == []


def test_the_csv_export_is_sent_a_batch_of_rows_at_a_time(
    app: Flask, api_client: ApiClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "BATCH", 2)
    response = app.test_client().get("/v1/commissions/export.csv", headers=api_client.headers, buffered=False)
    chunks = [chunk.decode() for chunk in response.response]
    response.close()
    assert [len(_rows(chunk)) for chunk in chunks] == [1, 2, 2, 1]  # the header, then two rows at a time
    assert _rows(chunks[0])[0][0] == "entry_id"


def test_a_formula_in_a_text_cell_is_written_inert(
    rt: runtime.Runtime, client: FlaskClient, api_client: ApiClient
) -> None:
    shop = add_shop(rt, api_client.id)
    add_entry(rt, shop, '=HYPERLINK("http://x")', 100)
    response = client.get("/v1/commissions/export.csv", headers=api_client.headers)
    (row,) = _rows(response.get_data(as_text=True))[1:]
    assert row[3] == '\'=HYPERLINK("http://x")'


def test_the_openapi_document_states_the_reads(client: FlaskClient) -> None:
    document = client.get("/v1/openapi.json").get_json()
    paths = document["paths"]
    operations = {
        ("/v1/creators/{creator_ref}/affiliate-links", "listCreatorAffiliateLinks"),
        ("/v1/creators/{creator_ref}/clicks", "listCreatorClicks"),
        ("/v1/creators/{creator_ref}/earnings", "getCreatorEarnings"),
        ("/v1/commissions", "listCommissions"),
        ("/v1/commissions/{public_id}", "getCommission"),
        ("/v1/commissions/export.csv", "exportCommissions"),
    }
    assert {(path, paths[path]["get"]["operationId"]) for path, _ in operations} == operations
    csv_ok = paths["/v1/commissions/export.csv"]["get"]["responses"]["200"]
    assert csv_ok["content"] == {"text/csv": {"schema": {"type": "string"}}}
    description = paths["/v1/commissions/export.csv"]["get"]["description"]
    assert (
        description.index("`entry_id`")
        < description.index("`amount_minor`")
        < description.index("`payout_id`")
    )
    assert "merchant_not_found" in paths["/v1/commissions"]["get"]["responses"]["404"]["description"]


def test_a_large_export_is_streamed_over_http_without_a_length(
    rt: runtime.Runtime, api_client: ApiClient
) -> None:
    shop = add_shop(rt, api_client.id)
    order_id, (line_id,) = add_order(rt, shop)
    with rt.db.session() as session:
        session.add_all(
            CommissionEntry(
                public_id=f"com_bulk_{index}",
                merchant_id=shop.merchant_id,
                creator_ref=f"creator-{index % 7}",
                program_id=shop.program_id,
                attribution_ref=f"live:{index}",
                order_id=order_id,
                order_line_id=line_id,
                kind="accrual",
                cause="order",
                base_minor=10_000 + index,
                rate_bps=1000,
                amount_minor=1000 + index,
                currency="USD",
                hold_until=NOW,
                created_at=NOW + timedelta(milliseconds=index),
            )
            for index in range(1201)
        )
    server = ServedApp(rt)
    try:
        with requests.get(
            f"{server.url}/v1/commissions/export.csv", headers=api_client.headers, stream=True, timeout=30
        ) as response:
            assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
            assert "Content-Length" not in response.headers  # sent as it is read, not built first
            text = b"".join(response.iter_content(chunk_size=None)).decode()
    finally:
        server.close()
    rows = _rows(text)
    assert len(rows) == 1202 and rows[0][0] == "entry_id"
    assert [row[0] for row in rows[1:]] == [f"com_bulk_{index}" for index in range(1201)]
    assert sum(int(row[17]) for row in rows[1:]) == sum(1000 + index for index in range(1201))


_serial = itertools.count(1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(
        st.tuples(
            st.integers(-50_000, 50_000).filter(bool),
            st.sampled_from(["pending", "approved", "paid"]),
            st.sampled_from(["USD", "JPY", "KWD"]),
        ),
        max_size=12,
    )
)
def test_earnings_totals_and_the_export_agree_on_any_ledger(
    rt: runtime.Runtime,
    client: FlaskClient,
    api_client: ApiClient,
    shop: Shop,
    entries: list[tuple[int, str, str]],
) -> None:
    creator = f"creator-p{next(_serial)}"
    order_id, (line_id,) = add_order(rt, shop)
    with rt.db.session() as session:
        session.add_all(
            CommissionEntry(
                public_id=f"com_{creator}_{index}",
                merchant_id=shop.merchant_id,
                creator_ref=creator,
                program_id=shop.program_id,
                attribution_ref="live:1",
                order_id=order_id,
                order_line_id=line_id,
                kind="accrual" if amount > 0 else "reversal",
                cause=f"case:{index}",
                base_minor=amount * 10,
                rate_bps=1000,
                amount_minor=amount,
                currency=currency,
                state=state,
                hold_until=NOW,
            )
            for index, (amount, state, currency) in enumerate(entries)
        )
    expected: dict[str, dict[str, int]] = {}
    for amount, state, currency in entries:
        sums = expected.setdefault(currency, {"pending": 0, "approved": 0, "paid": 0})
        sums[state] += amount

    earnings = _get(client, api_client, "/v1/creators/" + creator + "/earnings")
    got = {c["currency"]: c for c in earnings["currencies"]}
    assert set(got) == set(expected)
    for currency, sums in expected.items():
        row = got[currency]
        assert (row["pending_minor"], row["approved_minor"], row["paid_minor"]) == (
            sums["pending"], sums["approved"], sums["paid"],
        )  # fmt: skip
        assert row["balance_minor"] == sums["pending"] + sums["approved"]
        assert row["total_minor"] == sum(sums.values())
    totals = _get(client, api_client, "/v1/commissions", creator_ref=creator, limit=1)["totals"]
    assert [{k: v for k, v in t.items() if k != "creator_ref"} for t in totals] == earnings["currencies"]
    exported = _rows(
        client.get(
            "/v1/commissions/export.csv", query_string={"creator_ref": creator}, headers=api_client.headers
        ).get_data(as_text=True)
    )[1:]
    by_currency: dict[str, int] = {}
    for row in exported:
        by_currency[row[13]] = by_currency.get(row[13], 0) + int(row[17])
        assert Decimal(row[18]).scaleb(exponent(row[13])) == int(row[17])  # major units say the same amount
    assert by_currency == {currency: sum(sums.values()) for currency, sums in expected.items()}
