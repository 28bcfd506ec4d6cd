"""A merchant's store adapter: found in the registry, given its decrypted credentials, the shared rate ledger,
the export signal and, when its credentials expire, a guard that refreshes them once for everyone.

Credentials that expire are rotated through `credentials_guard`: one refresher per merchant at a time (a Redis
lock), the stored credentials read again under the lock so a pair another process stored is taken instead of
refreshed twice, the new pair written in one encrypted write, and a refused refresh pausing the merchant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from redis import Redis
from redis.exceptions import LockError
from sqlalchemy import select, update

from config.settings import Settings
from connector.domain import registry
from connector.domain.errors import AuthError, RetryableError
from connector.domain.ports import (
    AwaitsBulkSignal,
    CredentialsGuard,
    CredentialsRefresh,
    HttpOptions,
    RefreshesCredentials,
    SharesRateLimit,
    StoreAdapter,
)
from connector.infra import export_signals, problems, runtime
from connector.infra.crypto import SecretBox
from connector.infra.db import Database
from connector.infra.models import Merchant
from connector.infra.rate_limits import RedisRateLedger

logger = logging.getLogger(__name__)


def http_options(settings: Settings) -> HttpOptions:
    return HttpOptions(
        timeout=settings.http_timeout_seconds,
        allow_files=settings.feed_allow_files,
        allow_private=settings.feed_allow_private_urls,
    )


def credentials_guard(
    db: Database | None,
    secrets: SecretBox,
    redis: Redis | None,
    merchant_id: int,
    kind: str,
    *,
    timeout: float,
) -> CredentialsGuard:
    """A `CredentialsGuard` for one merchant: refreshes run one at a time (a Redis lock that lapses after
    long enough for the refresh call), on the credentials as stored when the lock is taken; the result is
    stored in one encrypted write. A refresh the store refuses (AuthError) pauses the merchant with a visible
    problem and is raised, never tried again on its own. Without `db` and `redis`, the process's runtime's
    are used (looked up when a refresh happens)."""
    name = f"storelink:{kind}:refresh:{merchant_id}"
    log = {"merchant_id": merchant_id, "kind": kind}

    def guard(refresh: CredentialsRefresh) -> Mapping[str, str]:
        if db is None or redis is None:
            rt = runtime.current()
            return _guarded(refresh, db or rt.db, redis or rt.redis)
        return _guarded(refresh, db, redis)

    def _guarded(refresh: CredentialsRefresh, db: Database, redis: Redis) -> Mapping[str, str]:
        lock = redis.lock(name, timeout=2 * timeout + 10, blocking_timeout=2 * timeout + 10)
        if not lock.acquire():
            raise RetryableError(
                f"merchant {merchant_id}: credentials are being refreshed elsewhere", code="refresh_busy"
            )
        try:
            with db.session() as session:
                stored_token = session.scalar(
                    select(Merchant.credentials_encrypted).where(Merchant.id == merchant_id)
                )
            stored = secrets.decrypt(stored_token)
            try:
                entries = refresh(stored)
            except AuthError as exc:
                problem = f"store refused the credentials refresh: {exc.message}"
                with db.session() as session:  # an uninstalled merchant stays uninstalled
                    paused = session.execute(
                        update(Merchant)
                        .where(Merchant.id == merchant_id, Merchant.status == "installed")
                        .values(status="paused", problem=problem)
                    ).rowcount  # type: ignore[attr-defined]
                    if paused:
                        problems.raise_problem(
                            session, problems.CREDENTIALS_REFUSED, merchant_id=merchant_id, detail=problem
                        )
                logger.warning(
                    "credentials refresh refused; merchant paused", extra={**log, "code": exc.code}
                )
                raise
            if entries is None:
                logger.info("credentials refreshed elsewhere; taking the stored ones", extra=log)
                return stored
            current = {**stored, **entries}
            with db.session() as session:
                session.execute(
                    update(Merchant)
                    .where(Merchant.id == merchant_id)
                    .values(credentials_encrypted=secrets.encrypt(current))
                )
            logger.info("credentials refreshed and stored", extra=log)
            return current
        finally:
            try:
                lock.release()
            except LockError:
                logger.warning("credentials refresh lock lapsed before release", extra=log)

    return guard


def build_adapter(
    merchant: Merchant,
    secrets: SecretBox,
    settings: Settings,
    *,
    db: Database | None = None,
    redis: Redis | None = None,
) -> StoreAdapter:
    """The merchant's adapter. One whose credentials expire rotates them through `credentials_guard` (on
    `db` and `redis`, else the process runtime's)."""
    credentials = secrets.decrypt(merchant.credentials_encrypted)
    adapter = registry.create_adapter(merchant.kind, merchant.config, credentials, http_options(settings))
    connection: Callable[[], Redis] = (
        (lambda: redis) if redis is not None else (lambda: runtime.current().redis)
    )
    if isinstance(adapter, AwaitsBulkSignal):
        adapter.bulk_signal = export_signals.waiter(connection, merchant.id)
    if isinstance(adapter, SharesRateLimit):
        adapter.rate_ledger = RedisRateLedger(connection, f"{merchant.kind}:{merchant.store_ref}")
    if isinstance(adapter, RefreshesCredentials):
        adapter.refresh_guard = credentials_guard(
            db, secrets, redis, merchant.id, merchant.kind, timeout=settings.http_timeout_seconds
        )
    return adapter
