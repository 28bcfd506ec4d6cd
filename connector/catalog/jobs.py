"""RQ job functions: module-level, taking ids only, idempotent when run again after a crash."""

from __future__ import annotations

import logging

from rq import get_current_job

from connector.catalog import syncs
from connector.catalog.synchronizer import CatalogSync, LeaseLostError
from connector.domain.errors import AuthError, PermanentError, RetryableError, StorelinkError
from connector.infra import runtime
from connector.infra.models import Merchant
from connector.infra.store_adapters import build_adapter

logger = logging.getLogger(__name__)


def _final_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def run_sync(run_id: int) -> dict[str, int] | None:
    """Run one recorded sync. A run already finished, or held by a live worker, makes this a no-op."""
    rt = runtime.current()
    token = syncs.claim(rt, run_id)
    if token is None:
        logger.info("sync run not claimable; nothing to do", extra={"run_id": run_id})
        return None
    run = syncs.get_run(rt, run_id)
    log = {"run_id": run_id, "merchant_id": run.merchant_id, "attempt": run.attempt}
    logger.info("sync run started", extra=log)
    try:
        with rt.db.session() as session:
            merchant = session.get(Merchant, run.merchant_id)
            if merchant is None or merchant.status != "installed":
                raise PermanentError("merchant is not active", code="merchant_not_active")
            adapter = build_adapter(merchant, rt.secrets, rt.settings)
        counts = CatalogSync(
            rt.db,
            adapter,
            merchant_id=run.merchant_id,
            run_id=run_id,
            lease_token=token,
            batch_size=rt.settings.sync_batch_size,
            full=run.full,
            dry_run=run.dry_run,
        ).run()
    except LeaseLostError:
        logger.warning("sync run taken over by another worker", extra=log)
        return None
    except AuthError as exc:
        with rt.db.session() as session:
            syncs.pause_merchant(session, run.merchant_id, f"store refused credentials: {exc.message}")
        syncs.finish(rt, run_id, token, status="failed", error=f"{exc.code}: {exc.message}")
        raise
    except PermanentError as exc:
        syncs.finish(rt, run_id, token, status="failed", error=f"{exc.code}: {exc.message}")
        raise
    except (RetryableError, Exception) as exc:
        final = _final_attempt()
        error = (
            f"{exc.code}: {exc.message}"
            if isinstance(exc, StorelinkError)
            else f"{type(exc).__name__}: {exc}"
        )
        syncs.finish(rt, run_id, token, status="failed" if final else "queued", error=error)
        raise
    syncs.finish(rt, run_id, token, status="succeeded")
    logger.info("sync run finished", extra={**log, "counts": counts.as_row()})
    return counts.as_row()


def sweep() -> list[int]:
    """Periodic: re-enqueue recorded work that lost its job."""
    return syncs.sweep(runtime.current())
