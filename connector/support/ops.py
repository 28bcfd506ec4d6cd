"""Operations behind the console and the CLI: start a resync of any kind, follow its progress, read problems.

Plain functions over the process runtime (`rt` defaults to `connector.infra.runtime.current()`), returning
plain data, so that `storelink resync`, `storelink problems` and the console's pages run the same thing:

- `start_resync(merchant_id, kind, dry_run=False, since=None)`: records and queues a sync run (`catalog`,
  `inventory` or `orders`); returns its id (an active run of that kind and dry-run flag is returned instead).
- `run_progress(run_id)`: a `RunProgress` (status, done of total, counts per kind, errors, change list).
- `resync_refusals(merchant)`: why a resync of each kind the merchant's store cannot do would be refused.
- `open_problems(merchant_ids=None)`, `problem_history(merchant_ids=None, limit=100)`: `ProblemView`s.

`COUNT_LABELS` and `describe_details` name what a run counted, for the CLI's tables and the console's pages.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select

from connector.catalog import syncs
from connector.domain import registry
from connector.domain.errors import NotFoundError, ValidationError
from connector.domain.ports import Capability
from connector.infra import problems, runtime
from connector.infra.models import Merchant, SyncRun
from connector.infra.problems import ProblemView

__all__ = [
    "COUNT_LABELS",
    "RESYNC_KINDS",
    "ProblemView",
    "RunProgress",
    "check_resync",
    "describe_details",
    "open_problems",
    "problem_history",
    "recent_runs",
    "resync_refusals",
    "run_progress",
    "start_resync",
]

logger = logging.getLogger(__name__)

RESYNC_KINDS: Final = ("catalog", "inventory", "orders")
NEEDS: Final = {"inventory": Capability.INVENTORY_READ, "orders": Capability.ORDER_PUSH}
"""What a merchant's store must be able to do for a resync of each kind."""

COUNT_LABELS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "catalog": (
        ("rows read", "rows_read"),
        ("created", "created"),
        ("updated", "updated"),
        ("unchanged", "unchanged"),
        ("deleted", "deleted"),
        ("failed rows", "failed_rows"),
        ("events", "events"),
    ),
    "inventory": (
        ("variants compared", "rows_read"),
        ("stock differences", "updated"),
        ("same", "unchanged"),
        ("not in the store", "failed_rows"),
    ),
    "orders": (
        ("accepted orders", "rows_read"),
        ("found in the store", "updated"),
        ("pushed", "created"),
        ("push under way", "unchanged"),
        ("lookup failed", "failed_rows"),
    ),
}
"""The row counters (`RunProgress.counts` keys) of each kind of run, as summaries name them; a kind not here
(reconcile) is told by its `details`."""


def describe_details(details: Mapping[str, Any] | None) -> str:
    """What an inventory, orders or reconcile run counted, in one line (`stock: drift 2, fixed 2; ...`)."""
    parts = []
    for name, value in (details or {}).items():
        if isinstance(value, dict):
            counted = ", ".join(f"{key.replace('_', ' ')} {count}" for key, count in value.items() if count)
            parts.append(f"{name}: {counted or 'nothing'}")
        elif isinstance(value, list):
            parts.append(f"{name.replace('_', ' ')}: {', '.join(map(str, value)) or 'none'}")
        elif isinstance(value, int) and value:
            parts.append(f"{name.replace('_', ' ')} {value}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class RunProgress:
    """A sync run as the console and `storelink resync` show it.

    `done` of `total` rows (None until known); `counts` are the run's row counters; `details` what the kind
    counted (inventory: compared, same, drift, fixed, missing_in_store; orders: examined, found_in_store,
    pushed, push_under_way, lookup_failed; reconcile: per part); `errors` the first bad rows (`line`,
    `error`); `changes` the change list (`op`: created, updated, deleted, stock, confirm, push; `changes`: field
    -> [before, after]), recorded by dry runs (and by inventory, orders and reconcile runs, what they did)."""

    id: int
    merchant_id: int
    kind: str
    dry_run: bool
    status: str
    total: int | None
    done: int
    counts: dict[str, int]
    details: dict[str, Any]
    error: str | None
    since: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    @property
    def fraction(self) -> float | None:
        """Share done, 0 to 1 (1 once finished); None while the total is unknown."""
        if self.finished:
            return 1.0
        if not self.total:
            return None
        return min(self.done / self.total, 1.0)

    @property
    def labelled_counts(self) -> list[tuple[str, int]]:
        """The counters of the run's kind by their names (none for a kind told by its details)."""
        return [(label, self.counts[key]) for label, key in COUNT_LABELS.get(self.kind, ())]

    @property
    def details_text(self) -> str:
        return describe_details(self.details)

    @property
    def counted(self) -> str:
        """What the run counted, in words: its details when its kind keeps them (inventory, orders,
        reconcile), else its row counters that are not zero."""
        return self.details_text or ", ".join(f"{label} {n}" for label, n in self.labelled_counts if n)


def _rt(rt: runtime.Runtime | None) -> runtime.Runtime:
    return rt or runtime.current()


def check_resync(merchant: Merchant, kind: str, since: datetime | None = None) -> None:
    """ValidationError when a resync of `kind` (from `since`) cannot run for the merchant: `bad_sync_kind`,
    `since_needs_orders`, `bad_since`, or `resync_not_supported` (its store cannot do it)."""
    if kind not in RESYNC_KINDS:
        raise ValidationError(
            f"unknown resync kind {kind!r}; one of {', '.join(RESYNC_KINDS)}", code="bad_sync_kind"
        )
    if since is not None and kind != "orders":
        raise ValidationError("since applies to an orders resync only", code="since_needs_orders")
    if since is not None and since.tzinfo is None:
        raise ValidationError("since needs a time zone (or Z for UTC)", code="bad_since")
    need = NEEDS.get(kind)
    if need is not None and need not in registry.capabilities(merchant.kind, merchant.config):
        what = "takes no orders" if kind == "orders" else "cannot tell its stock"
        raise ValidationError(
            f"merchant {merchant.name}: its store {what}", code="resync_not_supported", details={"kind": kind}
        )


def start_resync(
    merchant_id: int,
    kind: str = "catalog",
    dry_run: bool = False,
    since: datetime | None = None,
    *,
    rt: runtime.Runtime | None = None,
) -> int:
    """Record and queue a resync of `kind` for the merchant; its run id. ValidationError (`bad_sync_kind`,
    `resync_not_supported`, `merchant_not_active`, ...) or NotFoundError (`merchant_not_found`) when it
    cannot run; an active run of the same kind and dry-run flag is answered instead of a new one."""
    rt = _rt(rt)
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None:
            raise NotFoundError(f"no merchant {merchant_id}", code="merchant_not_found")
        check_resync(merchant, kind, since)
    run = syncs.request_sync(rt, merchant_id, kind=kind, full=True, dry_run=dry_run, since=since)
    logger.info(
        "resync started",
        extra={"merchant_id": merchant_id, "run_id": run.id, "kind": kind, "dry_run": dry_run},
    )
    return run.id


def resync_refusals(merchant: Merchant) -> dict[str, str]:
    """Why a resync of each kind the merchant's store cannot do would be refused (kind -> message); the kinds
    it can do are absent."""
    refused: dict[str, str] = {}
    for kind in RESYNC_KINDS:
        try:
            check_resync(merchant, kind)
        except ValidationError as exc:
            refused[kind] = exc.message
    return refused


def progress_of(run: SyncRun) -> RunProgress:
    """`RunProgress` of a run row read elsewhere."""
    return RunProgress(
        id=run.id,
        merchant_id=run.merchant_id,
        kind=run.kind,
        dry_run=run.dry_run,
        status=run.status,
        total=run.total,
        done=run.rows_read,
        counts={
            "rows_read": run.rows_read,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "deleted": run.deleted,
            "failed_rows": run.failed_rows,
            "events": run.events_emitted,
        },
        details=dict(run.details or {}),
        error=run.error,
        since=run.since,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        errors=list(run.row_errors or []),
        changes=list(run.diff or []),
    )


def run_progress(run_id: int, *, rt: runtime.Runtime | None = None) -> RunProgress:
    """The run's progress now; NotFoundError (`run_not_found`) for an unknown id."""
    with _rt(rt).db.session() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            raise NotFoundError(f"no sync run {run_id}", code="run_not_found")
        return progress_of(run)


def recent_runs(merchant_id: int, limit: int = 10, *, rt: runtime.Runtime | None = None) -> list[RunProgress]:
    """The merchant's newest runs of every kind, newest first."""
    with _rt(rt).db.session() as session:
        rows = session.scalars(
            select(SyncRun).where(SyncRun.merchant_id == merchant_id).order_by(SyncRun.id.desc()).limit(limit)
        )
        return [progress_of(row) for row in rows]


def open_problems(
    merchant_ids: Collection[int] | None = None, *, rt: runtime.Runtime | None = None
) -> list[ProblemView]:
    """Problems showing now, oldest first: those of `merchant_ids` (a merchant user's), or every merchant's
    and outbound endpoint's (None: support)."""
    with _rt(rt).db.session() as session:
        return problems.open_problems(session, merchant_ids)


def problem_history(
    merchant_ids: Collection[int] | None = None, limit: int = 100, *, rt: runtime.Runtime | None = None
) -> list[ProblemView]:
    """Problems that showed, open and cleared, newest first."""
    with _rt(rt).db.session() as session:
        return problems.problem_history(session, merchant_ids, limit=limit)
