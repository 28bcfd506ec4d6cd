"""The console's merchant pages: the merchants list (with its problem column) and one merchant's page, which
the page embedded in a store's admin shows too.

Problems come from the problem list (`connector.support.ops.open_problems`): a merchant user's pages show only
its merchants' problems; support also sees the outbound endpoints' problems (a note on the merchants list, the
list itself on the Webhooks page) and, on a merchant's page, the problems that cleared.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from flask import Response, abort

from connector.affiliates import reports
from connector.console import charts, operations, queries, resync
from connector.console.base import Principal, bp, page, principal, require_merchant, runtime
from connector.infra.models import Merchant
from connector.support import ops

logger = logging.getLogger(__name__)

RUNS_SHOWN: Final = 20
HISTORY_SHOWN: Final = 20


def chart_panels(visible: queries.Visible) -> dict[str, Any]:
    with runtime().db.session() as db:
        events = queries.events_per_minute(db, visible)
        latencies = queries.push_latencies(db, visible)
        outcomes = queries.deliveries_by_outcome(db, visible)
    return {
        "Events per minute (last hour)": charts.bars(events, "events per minute, last 60 minutes"),
        "Order push latency (newest orders)": charts.bars(
            latencies, "seconds to confirm, newest orders", " s", "#6a1b9a"
        ),
        "Webhook deliveries by outcome (24 h)": charts.outcomes(
            outcomes, "deliveries by outcome, last 24 hours"
        ),
    }


@bp.get("/")
def merchants() -> Response:
    who = principal()
    with runtime().db.session() as db:
        rows = queries.merchant_rows(db, who.merchant_ids)
    problems: dict[int, list[ops.ProblemView]] = {}
    endpoint_problems = 0
    for problem in ops.open_problems(who.merchant_ids, rt=runtime()):
        if problem.merchant_id is None:
            endpoint_problems += 1
        else:
            problems.setdefault(problem.merchant_id, []).append(problem)
    return page(
        "merchants.html",
        who=who,
        rows=rows,
        problems=problems,
        endpoint_problems=endpoint_problems if who.is_support else 0,
        charts=chart_panels(who.merchant_ids),
    )


def merchant_context(who: Principal, merchant_id: int) -> dict[str, Any]:
    """Everything the merchant page shows of `merchant_id` (the caller checked `who` may see it)."""
    rt = runtime()
    with rt.db.session() as db:
        merchant = db.get(Merchant, merchant_id)
        if merchant is None:
            abort(404, f"no merchant {merchant_id}")
        context: dict[str, Any] = {
            "who": who,
            "merchant": merchant,
            "orders": queries.orders(db, merchant_id),
            "showcases": queries.showcases(db, merchant_id),
            "live": queries.live_sessions(db, rt.redis, [merchant_id], limit=10),
            "commissions": reports.commission_totals(
                db, reports.CommissionFilter(merchant_id=merchant_id), None
            ),
            "inbound": operations.inbound_events(db, merchant_id),
        }
    context["runs"] = ops.recent_runs(merchant_id, RUNS_SHOWN, rt=rt)
    context["problems"] = ops.open_problems([merchant_id], rt=rt)
    context["cleared"] = (
        [p for p in ops.problem_history([merchant_id], HISTORY_SHOWN, rt=rt) if not p.open]
        if who.is_support
        else []
    )
    context["kinds"] = resync.offered_kinds(merchant)
    context["charts"] = chart_panels([merchant_id])
    return context


@bp.get("/merchants/<int:merchant_id>")
def merchant(merchant_id: int) -> Response:
    who = require_merchant(merchant_id)
    return page("merchant.html", **merchant_context(who, merchant_id))


@bp.get("/live")
def live() -> Response:
    """Live sessions of the merchants the reader may see, with pins and remaining allocation."""
    who = principal()
    rt = runtime()
    with rt.db.session() as db:
        rows = queries.live_sessions(db, rt.redis, who.merchant_ids)
    refreshing = any(row.session.status == "live" for row in rows)
    return page("live.html", who=who, rows=rows, refreshing=refreshing)
