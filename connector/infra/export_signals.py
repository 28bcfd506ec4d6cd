"""Word that a store's bulk export ended, passed from the inbound drain to the sync job waiting on it.

A store that announces finished bulk operations by webhook (e.g. Shopify's `bulk_operations/finish`) lets a full
sync start reading the moment its export is ready instead of at its next status poll. The drain pushes the
operation id onto a short-lived Redis list; the adapter, waiting between polls, blocks on that list for at
most its poll delay. The status poll stays the source of truth: a lost signal only costs the poll delay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from redis import Redis
from redis.exceptions import RedisError

from connector.domain.ports import BulkSignal

logger = logging.getLogger(__name__)

KEY_TTL_SECONDS: Final = 3600
"""A signal no sync took within this long is dropped (the run it was for has moved on)."""


def key(merchant_id: int, operation_id: str) -> str:
    return f"storelink:bulk-finished:{merchant_id}:{operation_id}"


def notify(redis: Redis, merchant_id: int, operation_id: str) -> None:
    """Tell a sync waiting on `operation_id` that the store says it ended."""
    name = key(merchant_id, operation_id)
    with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(name, "1")
        pipe.expire(name, KEY_TTL_SECONDS)
        pipe.execute()
    logger.debug(
        "bulk operation end signalled", extra={"merchant_id": merchant_id, "operation": operation_id}
    )


def waiter(connection: Callable[[], Redis], merchant_id: int) -> BulkSignal:
    """The `BulkSignal` of one merchant's adapter: blocks up to `timeout` seconds on the operation's list."""

    def wait(operation_id: str, timeout: float) -> bool:
        started = time.monotonic()
        try:
            return (
                connection().blpop([key(merchant_id, operation_id)], timeout=max(timeout, 0.01)) is not None
            )
        except (RedisError, RuntimeError):  # RuntimeError: this process has no Redis configured
            logger.warning(
                "bulk signal unavailable; waiting for the next poll",
                extra={"merchant_id": merchant_id, "operation": operation_id},
                exc_info=True,
            )
            time.sleep(max(0.0, timeout - (time.monotonic() - started)))
            return False

    return wait
