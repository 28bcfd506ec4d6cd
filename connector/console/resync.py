"""Resync from the console: the buttons start the same runs as `storelink resync` (catalog, inventory, orders;
through `connector.support.ops.start_resync`), a dry run first, whose table of changes is then applied; a run's
page follows its progress (`ops.run_progress`) through a small JSON document the page polls.

Each kind's change list is shown in its own table: the catalog's changes field by field (before → after), the
stock differences (stored → store), and the orders looked up (found and confirmed, or pushed). A refusal (a
kind the store cannot do, a bad `since`) is said in a message on the merchant's page, never a server error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from flask import Response, abort, flash, jsonify, redirect, request, url_for

from connector.catalog import syncs
from connector.console.base import bp, page, require_merchant
from connector.console.base import runtime as current_runtime
from connector.domain.errors import NotFoundError, PermanentError, ValidationError
from connector.infra.models import Merchant
from connector.infra.runtime import Runtime
from connector.support import ops

logger = logging.getLogger(__name__)

DIFF_ROWS: Final = 200
UNITS: Final = {"catalog": "rows", "inventory": "variants", "orders": "orders", "reconcile": "variants"}
"""What a run of each kind counts as it goes."""


NOTES: Final = {
    "catalog": "Reads the whole catalog again: products and variants added, changed (before → after), deleted.",
    "inventory": "Reads the store's stock of every tracked variant and fixes where Storelink's differs.",
    "orders": "Looks up the accepted orders in the store: confirms those it has, pushes the rest, never twice.",
}


@dataclass(frozen=True, slots=True)
class Offer:
    """A resync button: its kind, what it does, and why the merchant's store cannot run it (None: it can)."""

    kind: str
    note: str
    refused: str | None = None


def offered_kinds(merchant: Merchant) -> list[Offer]:
    """The resync kinds, each with the reason it would be refused for this merchant, if any."""
    refusals = ops.resync_refusals(merchant)
    return [Offer(kind, NOTES.get(kind, ""), refusals.get(kind)) for kind in ops.RESYNC_KINDS]


def parse_since(value: str | None) -> datetime | None:
    """An orders resync's `since`: an ISO 8601 time (a form's `datetime-local`), UTC when it names no zone."""
    if not value or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"since: {value!r} is not an ISO 8601 time", code="bad_since") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def start(rt: Runtime, merchant_id: int, kind: str, dry_run: bool, since: str | None = None) -> int:
    """Record and queue a resync run, as the CLI does (an active run of the same kind is answered instead);
    its id. ValidationError or NotFoundError when it cannot run."""
    run_id = ops.start_resync(merchant_id, kind, dry_run, parse_since(since), rt=rt)
    logger.info(
        "resync requested from the console",
        extra={"merchant_id": merchant_id, "run_id": run_id, "kind": kind, "dry_run": dry_run},
    )
    return run_id


# --- change tables ----------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, list | tuple):
        before, after = [*value, None, None][:2]
        return before, after
    return None, value


def _catalog_rows(entry: Mapping[str, Any]) -> list[dict[str, str]]:
    changes = entry.get("changes") or {"": [None, None]}
    rows = []
    for name, pair in changes.items():
        before, after = _pair(pair)
        rows.append(
            {
                "op": str(entry.get("op", "")),
                "product": _cell(entry.get("product", "")),
                "variant": _cell(entry.get("variant", "")),
                "field": str(name),
                "before": _cell(before),
                "after": _cell(after),
            }
        )
    return rows


def _stock_rows(entry: Mapping[str, Any]) -> list[dict[str, str]]:
    stored, store = _pair((entry.get("changes") or {}).get("available"))
    difference = f"{store - stored:+d}" if isinstance(stored, int) and isinstance(store, int) else "-"
    return [
        {
            "variant": _cell(entry.get("variant")),
            "sku": _cell(entry.get("sku")),
            "stored": _cell(stored),
            "store": _cell(store),
            "difference": difference,
        }
    ]


def _order_rows(entry: Mapping[str, Any]) -> list[dict[str, str]]:
    changes = entry.get("changes") or {}
    if entry.get("op") == "confirm":
        _, store_order = _pair(changes.get("store_order"))
        found, action = f"found: {_cell(store_order)}", "confirm (accepted → confirmed)"
    else:
        found, action = "not found", "push to the store"
    return [{"order": _cell(entry.get("order")), "store": found, "action": action}]


Columns = tuple[tuple[str, str], ...]
TABLES: Final[dict[str, tuple[Columns, Callable[[Mapping[str, Any]], list[dict[str, str]]]]]] = {
    "catalog": (
        (
            ("op", "change"),
            ("product", "product"),
            ("variant", "variant"),
            ("field", "field"),
            ("before", "before"),
            ("after", "after"),
        ),
        _catalog_rows,
    ),
    "stock": (
        (
            ("variant", "variant"),
            ("sku", "SKU"),
            ("stored", "stored"),
            ("store", "in the store"),
            ("difference", "difference"),
        ),
        _stock_rows,
    ),
    "orders": (
        (("order", "order"), ("store", "looked up in the store"), ("action", "then")),
        _order_rows,
    ),
}
TABLE_OF_KIND: Final = {"catalog": "catalog", "inventory": "stock", "reconcile": "stock", "orders": "orders"}
"""Which table shows a run's change list, by its kind (the reconcile run's list is its stock differences)."""


def change_table(
    kind: str, changes: list[dict[str, Any]], limit: int = DIFF_ROWS
) -> tuple[Columns, list[dict[str, str]]]:
    """A run's change list as its kind's table: (columns as (key, heading), rows), at most `limit` rows."""
    columns, rows_of = TABLES[TABLE_OF_KIND.get(kind, "catalog")]
    rows: list[dict[str, str]] = []
    for entry in changes:
        rows.extend(rows_of(entry))
        if len(rows) >= limit:
            return columns, rows[:limit]
    return columns, rows


# --- progress ---------------------------------------------------------------------------------------------------


def _percent(run: ops.RunProgress, total: int | None) -> int | None:
    if run.finished:
        return 100
    return min(99, int(100 * run.done / total)) if total else None


def progress(rt: Runtime, merchant_id: int, run_id: int) -> dict[str, Any]:
    """The run's state for its page (404 unless it is `merchant_id`'s): done of total (a catalog run without
    a total yet: about the last run's rows), counts by its kind, what it waits for, and once finished its
    change table (a dry run's: what it would change)."""
    try:
        run = ops.run_progress(run_id, rt=rt)
    except NotFoundError:
        abort(404, f"no sync run {run_id} of merchant {merchant_id}")
    if run.merchant_id != merchant_id:
        abort(404, f"no sync run {run_id} of merchant {merchant_id}")
    total, estimated, waiting = run.total, False, None
    if not run.finished:
        row = syncs.get_run(rt, run_id)
        waiting = syncs.waiting_for(rt, row)
        if total is None and run.kind == "catalog":
            total, estimated = syncs.expected_rows(rt, row), True
    columns, rows = change_table(run.kind, run.changes) if run.finished else ((), [])
    return {
        "id": run.id,
        "kind": run.kind,
        "dry_run": run.dry_run,
        "status": run.status,
        "finished": run.finished,
        "done": run.done,
        "rows_read": run.done,
        "total": total,
        "estimated": estimated,
        "fraction": run.fraction if run.total or run.finished else None,
        "percent": _percent(run, total),
        "unit": UNITS.get(run.kind, "rows"),
        "events": run.counts["events"],
        "counts": dict(run.labelled_counts),
        "details": run.details_text,
        "since": run.since.isoformat() if run.since else None,
        "error": run.error,
        "waiting": waiting,
        "changes": len(run.changes),
        "columns": [{"key": key, "label": label} for key, label in columns],
        "diff": rows,
    }


# --- routes -----------------------------------------------------------------------------------------------------


@bp.post("/merchants/<int:merchant_id>/resync")
def resync(merchant_id: int) -> Response:
    require_merchant(merchant_id)
    kind = request.form.get("kind", "catalog")
    dry_run = request.form.get("dry_run", "1") != "0"
    back = url_for("console.merchant", merchant_id=merchant_id) + "#resync"
    try:
        run_id = start(current_runtime(), merchant_id, kind, dry_run, request.form.get("since"))
    except PermanentError as exc:
        logger.info(
            "resync from the console refused",
            extra={"merchant_id": merchant_id, "kind": kind, "code": exc.code},
        )
        flash(f"{kind} resync not started: {exc.message}", "error")
        return redirect(back)  # type: ignore[return-value]
    return redirect(url_for("console.run", merchant_id=merchant_id, run_id=run_id))  # type: ignore[return-value]


@bp.get("/merchants/<int:merchant_id>/runs/<int:run_id>")
def run(merchant_id: int, run_id: int) -> Response:
    who = require_merchant(merchant_id)
    rt = current_runtime()
    state = progress(rt, merchant_id, run_id)
    with rt.db.session() as db:
        merchant = db.get(Merchant, merchant_id)
    return page("run.html", who=who, merchant=merchant, progress=state)


@bp.get("/merchants/<int:merchant_id>/runs/<int:run_id>.json")
def run_json(merchant_id: int, run_id: int) -> Response:
    require_merchant(merchant_id)
    response = jsonify(progress(current_runtime(), merchant_id, run_id))
    response.headers["Cache-Control"] = "no-store"
    return response
