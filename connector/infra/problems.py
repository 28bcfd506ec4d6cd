"""The problem list: keyed problems of a merchant (or of an outbound endpoint) that appear when their cause is
seen and clear themselves when it is gone.

Any layer raises a problem where it sees the cause and clears it where it sees success (a confirmed order push
clears `push_failing`), inside its own transaction (`raise_problem`, `clear_problems`) or in one of its own
(`report`, `resolve`: best effort, a failure is logged and never breaks the work that saw the cause). A cause
may ask to be seen several times (`after`) or for some time (`after_seconds`) before it shows: until then the
occurrence counts quietly and is forgotten if the cause goes away. A problem cleared stays as history.

Read with `open_problems` and `problem_history` (the console and `storelink problems list`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Select, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.domain.errors import AuthError, PermanentError, RetryableError
from connector.infra.db import Database
from connector.infra.models_ops import Problem

logger = logging.getLogger(__name__)

MERCHANT: Final = "merchant"
ENDPOINT: Final = "endpoint"
_CLEARED: Final = "storelink.problems_cleared"


@dataclass(frozen=True, slots=True)
class Cause:
    """A kind of problem: what it is called, what to do about it, and when an occurrence shows."""

    key: str
    title: str
    action: str
    scope: str = MERCHANT
    after: int = 1
    """Times the cause must be seen (without success in between) before the problem shows."""
    after_seconds: float = 0.0
    """How long the cause must have lasted (first seen to last seen) before the problem shows."""


CREDENTIALS_REFUSED: Final = "credentials_refused"
WEBHOOKS_MISSING: Final = "webhooks_missing"
PUSH_FAILING: Final = "push_failing"
THROTTLED: Final = "throttled"
STORE_UNREACHABLE: Final = "store_unreachable"
ENDPOINT_FAILING: Final = "endpoint_failing"
STOCK_DRIFT: Final = "stock_drift"

CAUSES: dict[str, Cause] = {
    cause.key: cause
    for cause in (
        Cause(
            CREDENTIALS_REFUSED,
            "Store credentials refused",
            "The store refused Storelink's credentials (or their refresh) and the merchant is paused: "
            "install the app again from the store (or connect the keys again); work resumes once it is.",
        ),
        Cause(
            WEBHOOKS_MISSING,
            "Store webhook subscriptions missing",
            "Storelink no longer hears of changes made in the store: install the app again (it subscribes "
            "again); meanwhile the scheduled reconciliation and `storelink resync` keep stock true.",
        ),
        Cause(
            PUSH_FAILING,
            "Order pushes failing",
            "Orders are not reaching the store and stay accepted while the push is retried: fix what the "
            "error says, then `storelink resync MERCHANT --orders` looks each one up and places the rest.",
            after=3,
        ),
        Cause(
            THROTTLED,
            "Throttled by the store for long",
            "The store keeps limiting Storelink's requests, so syncs and order pushes wait: another app may "
            "be using the store's API budget; space out resyncs.",
            after_seconds=600.0,
        ),
        Cause(
            STORE_UNREACHABLE,
            "Store or feed unreachable",
            "The store or feed address did not answer (or answered an error): check that it is up and "
            "reachable from Storelink, then `storelink resync MERCHANT`.",
        ),
        Cause(
            ENDPOINT_FAILING,
            "Platform webhook endpoint failing",
            "Deliveries to this endpoint keep failing and are retried on their schedule: check the receiver, "
            "then `storelink replay --failed` for those that gave up.",
            scope=ENDPOINT,
            after=5,
        ),
        Cause(
            STOCK_DRIFT,
            "Stock drift between the store and Storelink",
            "Reconciliation keeps finding store stock that Storelink did not hear of (and fixes it): the "
            "store's stock notifications are being lost; check its webhook subscriptions.",
            after=2,
        ),
    )
}


THROTTLE_CODES: Final = frozenset({"throttled", "rate_limited", "paced"})
"""Error codes of a store limiting requests."""
UNREACHABLE_CODES: Final = frozenset(
    {"feed_not_found", "feed_unreadable", "address_not_allowed", "invalid_url", "too_many_redirects"}
)
"""Permanent error codes of an address that gives nothing to read (besides `http_<status>`)."""
OWN_CODES: Final = frozenset({"refresh_busy", "stock_busy", "merchant_not_active"})
"""Retryable codes that say nothing of the store (Storelink's own locks)."""


def store_failure_cause(exc: BaseException) -> str | None:
    """The problem a failed call to a store is a sighting of: throttling, an address that does not answer (or
    answers an error), or none (refused credentials pause the merchant instead; bad data is the run's)."""
    if isinstance(exc, AuthError) or not isinstance(exc, RetryableError | PermanentError):
        return None
    if exc.code in OWN_CODES:
        return None
    if isinstance(exc, RetryableError):
        return THROTTLED if exc.code in THROTTLE_CODES else STORE_UNREACHABLE
    return STORE_UNREACHABLE if exc.code.startswith("http_") or exc.code in UNREACHABLE_CODES else None


@dataclass(frozen=True, slots=True)
class ProblemView:
    """One problem occurrence as shown to support and merchants."""

    id: int
    key: str
    title: str
    action: str
    detail: str | None
    merchant_id: int | None
    endpoint_id: int | None
    count: int
    first_seen_at: datetime
    last_seen_at: datetime
    raised_at: datetime | None
    cleared_at: datetime | None

    @property
    def open(self) -> bool:
        return self.cleared_at is None


def _open_key(cause: Cause, merchant_id: int | None, endpoint_id: int | None) -> str:
    if cause.scope == ENDPOINT:
        if endpoint_id is None:
            raise ValueError(f"problem {cause.key} is an endpoint's: endpoint_id is required")
        return f"{cause.key}:e{endpoint_id}"
    if merchant_id is None:
        raise ValueError(f"problem {cause.key} is a merchant's: merchant_id is required")
    return f"{cause.key}:m{merchant_id}"


def _cause(key: str) -> Cause:
    try:
        return CAUSES[key]
    except KeyError:
        raise ValueError(f"unknown problem {key!r}") from None


def raise_problem(
    session: Session,
    key: str,
    *,
    merchant_id: int | None = None,
    endpoint_id: int | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Count one sighting of cause `key` in `session`'s transaction; True when the problem shows (now or
    already)."""
    cause = _cause(key)
    open_key = _open_key(cause, merchant_id, endpoint_id)
    _cleared_in(session).discard(open_key)
    now = now or datetime.now(UTC)
    builder = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    insert = builder(Problem).values(
        merchant_id=merchant_id if cause.scope == MERCHANT else None,
        endpoint_id=endpoint_id if cause.scope == ENDPOINT else None,
        key=key,
        open_key=open_key,
        title=cause.title,
        action=cause.action,
        detail=detail,
        count=1,
        first_seen_at=now,
        last_seen_at=now,
    )
    statement = insert.on_conflict_do_update(
        index_elements=["open_key"],
        set_={"count": Problem.count + 1, "last_seen_at": now, "detail": insert.excluded.detail},
    ).returning(Problem.id, Problem.count, Problem.first_seen_at, Problem.raised_at)
    problem_id, count, first_seen, raised_at = session.execute(statement).one()
    if raised_at is not None:
        return True
    first_seen = first_seen if first_seen.tzinfo else first_seen.replace(tzinfo=UTC)
    if count < cause.after or now - first_seen < timedelta(seconds=cause.after_seconds):
        return False
    session.execute(update(Problem).where(Problem.id == problem_id).values(raised_at=now))
    logger.warning(
        "problem raised",
        extra={"problem": key, "merchant_id": merchant_id, "endpoint_id": endpoint_id, "detail": detail},
    )
    return True


def _cleared_in(session: Session) -> set[str]:
    """The open keys cleared in `session`'s current transaction and not sighted since."""
    transaction = session.get_transaction()
    kept = session.info.get(_CLEARED)
    if kept is None or kept[0] is not transaction:
        kept = session.info[_CLEARED] = (transaction, set())
    cleared: set[str] = kept[1]
    return cleared


def clear_problems(
    session: Session,
    keys: Iterable[str],
    *,
    merchant_id: int | None = None,
    endpoint_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """The causes `keys` are gone: their open problems are cleared (kept as history) and their quiet
    sightings forgotten, in `session`'s transaction. Returns the problems cleared.

    A cause this session already cleared, and has not seen since, is not cleared again: recording a round
    of a hundred successful deliveries to one endpoint clears its failing problem once, not a hundred
    times (each time two statements and a flush)."""
    cleared_here = _cleared_in(session)
    open_keys = [
        key
        for key in (_open_key(_cause(k), merchant_id, endpoint_id) for k in keys)
        if key not in cleared_here
    ]
    if not open_keys:
        return 0
    cleared_here.update(open_keys)
    session.execute(delete(Problem).where(Problem.open_key.in_(open_keys), Problem.raised_at.is_(None)))
    cleared = session.execute(
        update(Problem)
        .where(Problem.open_key.in_(open_keys))
        .values(open_key=None, cleared_at=now or datetime.now(UTC))
    ).rowcount  # type: ignore[attr-defined]
    if cleared:
        logger.info(
            "problem cleared",
            extra={"problems": list(keys), "merchant_id": merchant_id, "endpoint_id": endpoint_id},
        )
    return int(cleared or 0)


def report(
    db: Database,
    key: str,
    *,
    merchant_id: int | None = None,
    endpoint_id: int | None = None,
    detail: str | None = None,
) -> bool:
    """`raise_problem` in a transaction of its own; a failure is logged, never raised (returns False)."""
    try:
        with db.session() as session:
            return raise_problem(
                session, key, merchant_id=merchant_id, endpoint_id=endpoint_id, detail=detail
            )
    except Exception:
        logger.warning(
            "problem not recorded", extra={"problem": key, "merchant_id": merchant_id}, exc_info=True
        )
        return False


def resolve(
    db: Database, keys: Iterable[str], *, merchant_id: int | None = None, endpoint_id: int | None = None
) -> int:
    """`clear_problems` in a transaction of its own; a failure is logged, never raised (returns 0)."""
    keys = list(keys)
    try:
        with db.session() as session:
            return clear_problems(session, keys, merchant_id=merchant_id, endpoint_id=endpoint_id)
    except Exception:
        logger.warning(
            "problem not cleared", extra={"problems": keys, "merchant_id": merchant_id}, exc_info=True
        )
        return 0


def _view(row: Problem) -> ProblemView:
    return ProblemView(
        id=row.id,
        key=row.key,
        title=row.title,
        action=row.action,
        detail=row.detail,
        merchant_id=row.merchant_id,
        endpoint_id=row.endpoint_id,
        count=row.count,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
    )


def _scoped(query: Select[Any], merchant_ids: Collection[int] | None) -> Select[Any]:
    return query if merchant_ids is None else query.where(Problem.merchant_id.in_(list(merchant_ids)))


def open_problems(session: Session, merchant_ids: Collection[int] | None = None) -> list[ProblemView]:
    """The problems showing now, oldest first: of `merchant_ids` only, or every merchant's and endpoint's
    (None)."""
    query = select(Problem).where(Problem.cleared_at.is_(None), Problem.raised_at.is_not(None))
    query = _scoped(query, merchant_ids).order_by(Problem.raised_at, Problem.id)
    return [_view(row) for row in session.scalars(query)]


def problem_history(
    session: Session, merchant_ids: Collection[int] | None = None, *, limit: int = 100
) -> list[ProblemView]:
    """Problems that showed, open or cleared, newest first (at most `limit`)."""
    query = _scoped(select(Problem).where(Problem.raised_at.is_not(None)), merchant_ids)
    return [_view(row) for row in session.scalars(query.order_by(Problem.id.desc()).limit(limit))]
