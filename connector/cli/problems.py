"""`storelink problems`: the problem list of merchants and outbound endpoints, open or with their history."""

from __future__ import annotations

import logging
from datetime import datetime

import click
from sqlalchemy import select

from connector.cli.common import Context, _errors, _print_rows, pass_ctx
from connector.infra.models import Merchant, WebhookEndpoint
from connector.infra.problems import ProblemView
from connector.merchants.records import get_merchant
from connector.support import ops

logger = logging.getLogger(__name__)


@click.group()
def problems() -> None:
    """Keyed problems that appear when their cause is seen and clear themselves when it is gone."""


def _time(value: datetime | None) -> str | None:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else None


def describe(problem: ProblemView) -> str:
    """One problem in a line: title, how long and how often, the latest detail."""
    seen = f"since {_time(problem.first_seen_at)} UTC, seen {problem.count} time(s), last {_time(problem.last_seen_at)}"
    detail = f": {problem.detail}" if problem.detail else ""
    return f"{problem.title} ({problem.key}) {seen}{detail}"


def _owner(problem: ProblemView, names: dict[int, str], urls: dict[int, str]) -> str:
    """Whose problem it is: the merchant's name, or the endpoint's address."""
    if problem.merchant_id is not None:
        return names.get(problem.merchant_id, str(problem.merchant_id))
    if problem.endpoint_id is not None:
        return f"endpoint {urls.get(problem.endpoint_id, problem.endpoint_id)}"
    return ""


@problems.command("list")
@click.option("--merchant", "merchant_ref", default=None, help="Only this merchant's (id or name).")
@click.option("--all", "show_all", is_flag=True, help="Cleared problems too (the history), newest first.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1), help="With --all: at most.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def problems_list(obj: Context, merchant_ref: str | None, show_all: bool, limit: int, as_json: bool) -> None:
    """Open problems, oldest first (with --all, cleared ones too): for whom, what, since when, how often, what
    to do."""
    rt = obj.rt
    with _errors(), rt.db.session() as session:
        ids = None if merchant_ref is None else [get_merchant(session, merchant_ref).id]
        names = dict(session.execute(select(Merchant.id, Merchant.name)).all())
        urls = dict(session.execute(select(WebhookEndpoint.id, WebhookEndpoint.url)).all())
    found = ops.problem_history(ids, limit, rt=rt) if show_all else ops.open_problems(ids, rt=rt)
    rows = [
        {
            "id": p.id,
            "merchant_id": p.merchant_id,
            "endpoint_id": p.endpoint_id,
            "of": _owner(p, names, urls),
            "key": p.key,
            "title": p.title,
            "detail": p.detail,
            "count": p.count,
            "first_seen": _time(p.first_seen_at),
            "last_seen": _time(p.last_seen_at),
            "cleared": _time(p.cleared_at),
            "action": p.action,
        }
        for p in found
    ]
    columns = [
        ("of", "of"),
        ("problem", "key"),
        ("title", "title"),
        ("count", "count"),
        ("first seen (UTC)", "first_seen"),
        ("last seen", "last_seen"),
        *([("cleared", "cleared")] if show_all else []),
        ("detail", "detail"),
        ("what to do", "action"),
    ]
    _print_rows(rows, as_json, columns, empty="no problems" if show_all else "no open problems")
