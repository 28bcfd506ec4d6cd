"""RQ job functions: module-level, taking ids only, idempotent when run again after a crash.

`execute` runs the body of any kind of recorded sync run (the catalog's here; inventory, orders and
reconciliation runs from the layers that own their writes) under the run's lease, with one error policy:
credentials refused pause the merchant, a permanent error fails the run, anything else hands it back to RQ's
retry until the last attempt. The store's answers also raise and clear the merchant's problems.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rq import get_current_job

from connector.catalog import syncs
from connector.catalog.synchronizer import CatalogSync, LeaseLostError
from connector.domain.errors import AuthError, PermanentError, StorelinkError
from connector.infra import problems, runtime
from connector.infra.models import Merchant, SyncRun
from connector.infra.store_adapters import build_adapter

logger = logging.getLogger(__name__)

RunBody = Callable[[runtime.Runtime, SyncRun, str, Merchant], dict[str, Any]]
"""The work of one run: (runtime, the run, its lease token, its merchant, detached) -> counts to log."""

STORE_SUCCESS = (problems.THROTTLED, problems.STORE_UNREACHABLE, problems.CREDENTIALS_REFUSED)
"""Problems a run that talked to the store to its end proves gone."""


def _final_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, StorelinkError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def execute(run_id: int, body: RunBody) -> dict[str, Any] | None:
    """Run one recorded run of any kind. A run already finished, or held by a live worker, makes this a
    no-op; so does a run taken over by another worker meanwhile."""
    rt = runtime.current()
    token = syncs.claim(rt, run_id)
    if token is None:
        logger.info("sync run not claimable; nothing to do", extra={"run_id": run_id})
        return None
    run = syncs.get_run(rt, run_id)
    log = {"run_id": run_id, "merchant_id": run.merchant_id, "kind": run.kind, "attempt": run.attempt}
    logger.info("sync run started", extra=log)
    try:
        with rt.db.session() as session:
            merchant = session.get(Merchant, run.merchant_id)
            if merchant is None or merchant.status != "installed":
                raise PermanentError("merchant is not active", code="merchant_not_active")
            session.expunge(merchant)
        counts = body(rt, run, token, merchant)
    except LeaseLostError:
        logger.warning("sync run taken over by another worker", extra=log)
        return None
    except AuthError as exc:
        with rt.db.session() as session:
            syncs.pause_merchant(session, run.merchant_id, f"store refused credentials: {exc.message}")
        syncs.finish(rt, run_id, token, status="failed", error=_error_text(exc))
        raise
    except PermanentError as exc:
        _store_failed(rt, run.merchant_id, exc)
        syncs.finish(rt, run_id, token, status="failed", error=_error_text(exc))
        raise
    except Exception as exc:
        _store_failed(rt, run.merchant_id, exc)
        syncs.finish(
            rt, run_id, token, status="failed" if _final_attempt() else "queued", error=_error_text(exc)
        )
        raise
    problems.resolve(rt.db, STORE_SUCCESS, merchant_id=run.merchant_id)
    syncs.finish(rt, run_id, token, status="succeeded")
    logger.info("sync run finished", extra={**log, "counts": counts})
    return counts


def _store_failed(rt: runtime.Runtime, merchant_id: int, exc: BaseException) -> None:
    cause = problems.store_failure_cause(exc)
    if cause is not None:
        problems.report(rt.db, cause, merchant_id=merchant_id, detail=_error_text(exc))


def _catalog(rt: runtime.Runtime, run: SyncRun, token: str, merchant: Merchant) -> dict[str, Any]:
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    counts = CatalogSync(
        rt.db,
        adapter,
        merchant_id=run.merchant_id,
        run_id=run.id,
        lease_token=token,
        batch_size=rt.settings.sync_batch_size,
        full=run.full,
        dry_run=run.dry_run,
    ).run()
    return counts.as_row()


def run_sync(run_id: int) -> dict[str, Any] | None:
    """Run one recorded catalog sync."""
    return execute(run_id, _catalog)


def sweep() -> list[int]:
    """Periodic: re-enqueue recorded work that lost its job."""
    return syncs.sweep(runtime.current())
