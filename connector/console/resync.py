"""Resync from the console: the button starts the same run as `storelink resync` (`syncs.request_sync`, a
full run through the workers), a dry run first, whose table of changes is then applied; its page follows the
run's progress through a small JSON document the page polls.

The kinds offered are `RESYNC_KINDS`; a kind is enabled when the sync runs know it (`syncs.KINDS`), so a kind
the runs learn appears enabled with no change here.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, request, url_for

from connector.catalog import syncs
from connector.console.base import bp, page, require_merchant
from connector.console.base import runtime as current_runtime
from connector.domain.errors import PermanentError
from connector.infra.models import Merchant, SyncRun
from connector.infra.runtime import Runtime

logger = logging.getLogger(__name__)

RESYNC_KINDS = ("catalog", "inventory", "orders")
DIFF_ROWS = 200
TERMINAL = ("succeeded", "failed")


def offered_kinds() -> list[tuple[str, bool]]:
    """(kind, whether a run of it can be started now), for the buttons."""
    known = tuple(syncs.KINDS)
    return [(kind, kind in known) for kind in RESYNC_KINDS] + [
        (k, True) for k in known if k not in RESYNC_KINDS
    ]


def start(rt: Runtime, merchant_id: int, kind: str, dry_run: bool) -> SyncRun:
    """Record and queue a full run (an active run of the same kind is answered instead), as the CLI does."""
    run = syncs.request_sync(rt, merchant_id, kind=kind, full=True, dry_run=dry_run)
    logger.info(
        "resync requested from the console",
        extra={"merchant_id": merchant_id, "run_id": run.id, "kind": kind, "dry_run": dry_run},
    )
    return run


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def diff_rows(diff: list[dict[str, Any]], limit: int = DIFF_ROWS) -> list[dict[str, str]]:
    """A dry run's change list, one row per changed field with the stored value and the store's."""
    rows: list[dict[str, str]] = []
    for entry in diff:
        changes = entry.get("changes") or {"": [None, None]}
        for name, pair in changes.items():
            before, after = [*pair, None, None][:2] if isinstance(pair, list | tuple) else (None, pair)
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
            if len(rows) == limit:
                return rows
    return rows


def progress(rt: Runtime, run: SyncRun) -> dict[str, Any]:
    """The run's state for its page: rows against the last run's total, counts, and what it waits for."""
    finished = run.status in TERMINAL
    total = syncs.expected_rows(rt, run)
    if finished:
        percent: int | None = 100
    else:
        percent = min(99, int(100 * run.rows_read / total)) if total else None
    return {
        "id": run.id,
        "kind": run.kind,
        "dry_run": run.dry_run,
        "status": run.status,
        "finished": finished,
        "rows_read": run.rows_read,
        "total": total,
        "percent": percent,
        "events": run.events_emitted,
        "counts": {
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "deleted": run.deleted,
            "failed rows": run.failed_rows,
        },
        "error": run.error,
        "waiting": None if finished else syncs.waiting_for(rt, run),
        "changes": len(run.diff or []),
        "diff": diff_rows(run.diff or []) if run.dry_run and finished else [],
    }


def merchant_run(rt: Runtime, merchant_id: int, run_id: int) -> SyncRun:
    """The run `run_id` when it is `merchant_id`'s; 404 otherwise."""
    with rt.db.session() as db:
        run = db.get(SyncRun, run_id)
        if run is None or run.merchant_id != merchant_id:
            abort(404, f"no sync run {run_id} of merchant {merchant_id}")
        return run


@bp.post("/merchants/<int:merchant_id>/resync")
def resync(merchant_id: int) -> Response:
    require_merchant(merchant_id)
    kind = request.form.get("kind", "catalog")
    dry_run = request.form.get("dry_run", "1") != "0"
    back = url_for("console.merchant", merchant_id=merchant_id)
    if kind not in syncs.KINDS:
        flash(f"a {kind} resync cannot be started yet", "error")
        return redirect(back)  # type: ignore[return-value]
    try:
        run = start(current_runtime(), merchant_id, kind, dry_run)
    except PermanentError as exc:
        flash(f"resync not started: {exc.message}", "error")
        return redirect(back)  # type: ignore[return-value]
    return redirect(url_for("console.run", merchant_id=merchant_id, run_id=run.id))  # type: ignore[return-value]


@bp.get("/merchants/<int:merchant_id>/runs/<int:run_id>")
def run(merchant_id: int, run_id: int) -> Response:
    who = require_merchant(merchant_id)
    rt = current_runtime()
    found = merchant_run(rt, merchant_id, run_id)
    with rt.db.session() as db:
        merchant = db.get(Merchant, merchant_id)
    return page("run.html", who=who, merchant=merchant, run=found, progress=progress(rt, found))


@bp.get("/merchants/<int:merchant_id>/runs/<int:run_id>.json")
def run_json(merchant_id: int, run_id: int) -> Response:
    require_merchant(merchant_id)
    rt = current_runtime()
    response = jsonify(progress(rt, merchant_run(rt, merchant_id, run_id)))
    response.headers["Cache-Control"] = "no-store"
    return response
