"""`storelink showcases`: create, list, show (with live price and stock), edit and delete showcases."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from connector.cli.common import Context, _errors, _print_rows, console, pass_ctx
from connector.merchants import connect
from connector.showcases import showcases as service

logger = logging.getLogger(__name__)

_LIST_COLUMNS = [
    ("id", "id"),
    ("owner", "owner"),
    ("handle", "handle"),
    ("title", "title"),
    ("out of stock", "out_of_stock"),
    ("rule", "rule"),
    ("placed", "placed"),
]
_ITEM_COLUMNS = [
    ("#", "position"),
    ("product", "product_id"),
    ("title", "title"),
    ("price", "price"),
    ("sale", "sale"),
    ("sellable", "sellable"),
    ("state", "state"),
    ("link", "link"),
]


def _rule(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise click.BadParameter("not JSON", param_hint="--rule") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("a JSON object", param_hint="--rule")
    return parsed


def _row(body: dict[str, Any]) -> dict[str, Any]:
    owner = f"merchant {body['merchant_id']}" if body["owner_kind"] == "merchant" else body["creator_ref"]
    return {
        **body,
        "owner": owner,
        "rule": json.dumps(body["rule"]) if body["rule"] is not None else "",
        "placed": len(body["placed"]),
    }


def _show(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body))
    else:
        _print_rows([_row(body)], False, _LIST_COLUMNS)


@click.group()
def showcases() -> None:
    """Merchants' and creators' showcases."""


@showcases.command("create")
@click.option("--title", required=True)
@click.option("--handle", required=True, help="Unique per owner: a-z, 0-9 and '-'.")
@click.option("--merchant", "merchant_id", type=int, default=None, help="A merchant's showcase: its id.")
@click.option("--creator", "creator_ref", default=None, help="A creator's showcase: the creator's ref.")
@click.option("--client", "platform_client", default=None, help="A creator's platform client (id or name).")
@click.option("--rule", "rule", default=None, help='A rule as JSON, e.g. \'{"vendor": "Acme"}\'.')
@click.option("--out-of-stock", type=click.Choice(["hide", "sold_out"]), default="hide")
@click.option(
    "--max-items", type=int, default=service.DEFAULT_RULE_ITEMS, help="Most products the rule adds."
)
@click.option("--product", "product_ids", type=int, multiple=True, help="A hand-placed product (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def create(ctx: Context, **options: Any) -> None:
    """Create a showcase of a merchant (--merchant) or of a creator (--creator with --client)."""
    with _errors():
        rt = ctx.rt
        if options["creator_ref"] is not None:
            if options["platform_client"] is None:
                raise click.UsageError("a creator's showcase needs --client")
            with rt.db.session() as session:
                client_id = connect.find_platform_client(session, options["platform_client"]).id
        else:
            if options["merchant_id"] is None:
                raise click.UsageError("give --merchant or --creator")
            client_id = service.client_of(rt, merchant_id=options["merchant_id"])
        spec = service.ShowcaseSpec(
            owner_kind="creator" if options["creator_ref"] is not None else "merchant",
            title=options["title"],
            handle=options["handle"],
            merchant_id=options["merchant_id"],
            creator_ref=options["creator_ref"],
            out_of_stock=options["out_of_stock"],
            rule=_rule(options["rule"]),
            max_items=options["max_items"],
            product_ids=list(options["product_ids"]),
        )
        body = service.create_showcase(rt, client_id, spec)
    if not options["as_json"]:
        console.print(f"created showcase {body['id']} ({body['handle']})", highlight=False)
        return
    _show(body, True)


@showcases.command("list")
@click.option("--merchant", "merchant_id", type=int, default=None)
@click.option("--creator", "creator_ref", default=None)
@click.option("--client", "platform_client", default=None, help="Only this platform client's (id or name).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(
    ctx: Context, merchant_id: int | None, creator_ref: str | None, platform_client: str | None, as_json: bool
) -> None:
    """Showcases by id."""
    with _errors():
        rt = ctx.rt
        client_id = None
        if platform_client is not None:
            with rt.db.session() as session:
                client_id = connect.find_platform_client(session, platform_client).id
        rows, _ = service.list_showcases(
            rt, client_id, merchant_id=merchant_id, creator_ref=creator_ref, limit=service.MAX_ITEMS
        )
    if as_json:
        click.echo(json.dumps(rows))
        return
    _print_rows([_row(r) for r in rows], False, _LIST_COLUMNS, empty="no showcases")


def _money(price: dict[str, Any] | None) -> str:
    return "" if price is None else f"{price['amount_minor']} {price['currency']}"


@showcases.command("show")
@click.argument("showcase_id", type=int)
@click.option("--limit", type=click.IntRange(1, 1000), default=200, help="Items to show.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, showcase_id: int, limit: int, as_json: bool) -> None:
    """The visible items now, with live price (minor units) and sellable stock."""
    with _errors():
        rt = ctx.rt
        client_id = service.client_of(rt, showcase_id=showcase_id)
        base_url = rt.settings.public_url or "http://localhost"
        page = service.read_showcase(rt, client_id, showcase_id, offset=0, limit=limit, base_url=base_url)
    if as_json:
        click.echo(json.dumps({**page.showcase, "items": page.items, "total": page.total}))
        return
    _print_rows([_row(page.showcase)], False, _LIST_COLUMNS)
    rows = [
        {
            **item,
            "price": _money(item["price"]),
            "sale": _money(item["sale_price"]),
            "state": "sold out" if item["sold_out"] else "available",
            "link": item["link"]["url"] if item["link"] else "",
        }
        for item in page.items
    ]
    _print_rows(rows, False, _ITEM_COLUMNS, empty="no visible items")
    console.print(f"{page.total} visible item(s)", highlight=False)


@showcases.command("edit")
@click.argument("showcase_id", type=int)
@click.option("--title", default=None)
@click.option("--handle", default=None)
@click.option("--rule", "rule", default=None, help="A new rule as JSON.")
@click.option("--no-rule", is_flag=True, help="Remove the rule.")
@click.option("--out-of-stock", type=click.Choice(["hide", "sold_out"]), default=None)
@click.option("--max-items", type=int, default=None)
@click.option("--product", "product_ids", type=int, multiple=True, help="Replaces the hand-placed list.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def edit(ctx: Context, showcase_id: int, **options: Any) -> None:
    """Change a showcase; --product (repeatable) replaces its hand-placed products."""
    changes: dict[str, Any] = {
        name: options[name]
        for name in ("title", "handle", "out_of_stock", "max_items")
        if options[name] is not None
    }
    if options["rule"] is not None and options["no_rule"]:
        raise click.UsageError("--rule and --no-rule exclude each other")
    if options["rule"] is not None or options["no_rule"]:
        changes["rule"] = _rule(options["rule"])
    if options["product_ids"]:
        changes["product_ids"] = list(options["product_ids"])
    with _errors():
        rt = ctx.rt
        body = service.update_showcase(
            rt, service.client_of(rt, showcase_id=showcase_id), showcase_id, changes
        )
    _show(body, options["as_json"])


@showcases.command("delete")
@click.argument("showcase_id", type=int)
@pass_ctx
def delete(ctx: Context, showcase_id: int) -> None:
    """Delete a showcase."""
    with _errors():
        rt = ctx.rt
        service.delete_showcase(rt, service.client_of(rt, showcase_id=showcase_id), showcase_id)
    console.print(f"deleted showcase {showcase_id}", highlight=False)
