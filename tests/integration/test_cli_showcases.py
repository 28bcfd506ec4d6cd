"""`storelink showcases`: create, list, show with live price and stock, edit and delete; errors are one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update

from connector.infra import runtime
from connector.infra.models import InventoryLevel
from tests.fixtures import Runner
from tests.integration.affiliate_support import add_product, create_program, product_of
from tests.integration.checkout_support import make_shop


def test_showcases_are_managed_from_the_command_line(
    rt: runtime.Runtime, cli: Callable[..., str], runner: Runner, tmp_path: Path
):
    shop = make_shop(rt, tmp_path, stock=(4,), prices=(1_200,))
    mug = product_of(rt, shop.variants[0])
    cap, _ = add_product(rt, shop, 800, "cap")
    merchant = str(shop.merchant_id)

    out = cli(
        "showcases",
        "create",
        "--title",
        "Spring",
        "--handle",
        "spring",
        "--merchant",
        merchant,
        "--product",
        str(mug),
    )
    assert "created showcase" in out
    made = json.loads(
        cli(
            "showcases",
            "create",
            "--title",
            "Cheap",
            "--handle",
            "cheap",
            "--merchant",
            merchant,
            "--rule",
            '{"max_price_minor": 1000}',
            "--json",
        )
    )
    listed = json.loads(cli("showcases", "list", "--json"))
    assert [s["handle"] for s in listed] == ["spring", "cheap"]

    shown = json.loads(cli("showcases", "show", str(made["id"]), "--json"))
    assert [(i["product_id"], i["price"]["amount_minor"]) for i in shown["items"]] == [(cap, 800)]
    table = cli("showcases", "show", str(listed[0]["id"]))
    assert "1200 USD" in table and "available" in table

    with rt.db.session() as session:
        session.execute(
            update(InventoryLevel).where(InventoryLevel.variant_id == shop.variants[0]).values(available=0)
        )
    edited = json.loads(
        cli(
            "showcases",
            "edit",
            str(listed[0]["id"]),
            "--out-of-stock",
            "sold_out",
            "--product",
            str(cap),
            "--product",
            str(mug),
            "--json",
        )
    )
    assert edited["out_of_stock"] == "sold_out" and [p["product_id"] for p in edited["placed"]] == [cap, mug]
    assert "sold out" in cli("showcases", "show", str(listed[0]["id"]))

    # A creator's showcase carries the creator's links.
    create_program(shop, default_rate_bps=1000)
    cli(
        "showcases",
        "create",
        "--title",
        "Mine",
        "--handle",
        "mine",
        "--creator",
        "c-1",
        "--client",
        str(shop.client_id),
        "--product",
        str(cap),
    )
    creator = json.loads(cli("showcases", "list", "--creator", "c-1", "--json"))
    shown = json.loads(cli("showcases", "show", str(creator[0]["id"]), "--json"))
    assert "/l/" in shown["items"][0]["link"]["url"]

    assert "deleted showcase" in cli("showcases", "delete", str(made["id"]))
    for args, message in [
        (("showcases", "show", str(made["id"])), "[showcase_not_found]"),
        (
            (
                "showcases",
                "create",
                "--title",
                "x",
                "--handle",
                "x",
                "--merchant",
                merchant,
                "--rule",
                '{"tag": " "}',
            ),
            "[invalid_rule]",
        ),
        (
            ("showcases", "create", "--title", "x", "--handle", "spring", "--merchant", merchant),
            "[handle_taken]",
        ),
        (
            (
                "showcases",
                "create",
                "--title",
                "x",
                "--handle",
                "y",
                "--merchant",
                merchant,
                "--product",
                "999999",
            ),
            "[product_not_found]",
        ),
    ]:
        result = runner(*args)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
