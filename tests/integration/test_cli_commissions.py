"""`storelink commissions list|show|export` and `storelink programs list|show`: support reads the ledger and the
programs of every merchant; unknown merchants, entries and programs are one-line errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from connector.affiliates import export
from connector.infra import runtime
from tests.fixtures import Runner
from tests.integration.ledger_seed import (
    NOW,
    Shop,
    add_entry,
    add_link,
    add_order,
    add_payout,
    add_program,
    add_shop,
)

Cli = Callable[..., str]


class Ledger:
    def __init__(self, rt: runtime.Runtime) -> None:
        self.shop: Shop = add_shop(rt, None, name="north")
        self.other: Shop = add_shop(rt, None, name="south")
        self.link, self.code = add_link(rt, self.shop, "creator-1")
        order = add_order(rt, self.shop)
        payout = add_payout(rt, "creator-1")
        self.paid_row, self.paid = add_entry(
            rt, self.shop, "creator-1", 2000, state="paid", link_id=self.link, order=order,
            payout_id=payout, created_at=NOW - timedelta(days=2),
        )  # fmt: skip
        self.reversal = add_entry(
            rt, self.shop, "creator-1", -500, link_id=self.link, order=order, reverses=self.paid_row,
            created_at=NOW - timedelta(days=1),
        )[1]  # fmt: skip
        self.approved = add_entry(rt, self.shop, "creator-2", 700, state="approved")[1]
        self.yen = add_entry(rt, self.other, "creator-1", 150, currency="JPY")[1]


@pytest.fixture
def ledger(rt: runtime.Runtime) -> Ledger:
    return Ledger(rt)


def _error(runner: Runner, *args: str) -> str:
    result = runner(*args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_commissions_list_prints_entries_and_totals(cli: Cli, ledger: Ledger) -> None:
    rows = json.loads(cli("commissions", "list", "--json"))
    assert [row["id"] for row in rows] == [ledger.yen, ledger.approved, ledger.reversal, ledger.paid]
    reversal = rows[2]
    assert (reversal["amount_minor"], reversal["amount"], reversal["reverses"]) == (
        -500,
        "-5.00",
        ledger.paid,
    )
    assert reversal["created_at"].endswith("Z")

    def ids(*options: str) -> list[str]:
        return [row["id"] for row in json.loads(cli("commissions", "list", "--json", *options))]

    assert ids("--merchant", "south") == [ledger.yen]
    assert ids("--merchant", str(ledger.shop.merchant_id), "--creator", "creator-1") == [
        ledger.reversal,
        ledger.paid,
    ]
    assert ids("--state", "approved") == [ledger.approved]
    assert ids("--kind", "reversal") == [ledger.reversal]
    day = NOW - timedelta(days=1)
    assert ids("--since", day.isoformat()) == [ledger.yen, ledger.approved, ledger.reversal]
    assert ids("--until", day.replace(tzinfo=None).isoformat()) == [ledger.paid]
    assert ids("--limit", "1") == [ledger.yen]

    table = cli("commissions", "list")
    assert ledger.reversal in table and "-5.00" in table
    totals = table[table.index("totals") :]
    assert "creator-1" in totals and "-5.00" in totals and "20.00" in totals  # USD: -5.00 unpaid, 20.00 paid


def test_commissions_show_gives_the_history(cli: Cli, ledger: Ledger) -> None:
    detail = json.loads(cli("commissions", "show", ledger.paid, "--json"))
    assert detail["entry"]["id"] == ledger.paid and detail["reversed_by"] == [ledger.reversal]
    assert [step["to_state"] for step in detail["history"]] == ["pending", "approved", "paid"]
    assert detail["link"]["code"] == ledger.code and detail["program"]["name"] == "Open to all"
    text = cli("commissions", "show", ledger.paid)
    assert "20.00 USD" in text and ledger.reversal in text and "history" in text
    assert text.index("pending") < text.index("approved") < text.rindex("paid")


def test_commissions_export_writes_the_csv_to_stdout_or_a_file(
    cli: Cli, ledger: Ledger, tmp_path: Path
) -> None:
    printed = list(csv.reader(io.StringIO(cli("commissions", "export", "--creator", "creator-1"))))
    assert tuple(printed[0]) == export.COLUMNS
    assert [row[0] for row in printed[1:]] == [ledger.paid, ledger.reversal, ledger.yen]  # creation order
    target = tmp_path / "out.csv"
    message = cli("commissions", "export", "--merchant", "north", "--output", str(target))
    assert "exported 3 commissions" in message
    with target.open(newline="") as handle:
        written = list(csv.reader(handle))
    assert tuple(written[0]) == export.COLUMNS
    amounts = {row[0]: (row[17], row[18]) for row in written[1:]}
    assert amounts == {
        ledger.paid: ("2000", "20.00"),
        ledger.reversal: ("-500", "-5.00"),
        ledger.approved: ("700", "7.00"),
    }


def test_commissions_errors_are_one_line(runner: Runner, ledger: Ledger) -> None:
    assert "merchant_not_found" in _error(runner, "commissions", "list", "--merchant", "nowhere")
    assert "merchant_not_found" in _error(runner, "commissions", "export", "--merchant", "999999")
    assert "commission_not_found" in _error(runner, "commissions", "show", "com_nothing")
    result = runner("commissions", "list", "--since", "soon")
    assert result.exit_code == 2 and "ISO 8601" in result.output and "Traceback" not in result.output
    result = runner("commissions", "list", "--since", NOW.isoformat(), "--until", NOW.isoformat())
    assert result.exit_code == 2 and "later than --since" in result.output
    assert runner("commissions", "list", "--state", "refunded").exit_code == 2


def test_programs_list_and_show(cli: Cli, runner: Runner, rt: runtime.Runtime, ledger: Ledger) -> None:
    targeted = add_program(
        rt,
        ledger.shop.merchant_id,
        name="For creator-9",
        kind="targeted",
        creator_ref="creator-9",
        rate_bps=None,
    )
    rows = json.loads(cli("programs", "list", "--json"))
    assert [row["id"] for row in rows] == [ledger.shop.program_id, ledger.other.program_id, targeted]
    assert rows[0]["links"] == 1 and rows[1]["links"] == 0 and rows[0]["window"] == "7d"
    listed = json.loads(cli("programs", "list", "--merchant", "north", "--json"))
    assert [row["id"] for row in listed] == [ledger.shop.program_id, targeted]
    assert "For creator-9" in cli("programs", "list")

    shown = json.loads(cli("programs", "show", str(ledger.shop.program_id), "--json"))
    assert shown["default_rate_bps"] == 1000
    assert shown["rates"] == [
        {"product_id": ledger.shop.product_id, "product_title": "north tee", "rate_bps": 1500}
    ]
    text = cli("programs", "show", str(targeted))
    assert "creator-9" in text and "no per-product rates" in text

    assert "program_not_found" in _error(runner, "programs", "show", "999999")
    assert "merchant_not_found" in _error(runner, "programs", "list", "--merchant", "nowhere")
