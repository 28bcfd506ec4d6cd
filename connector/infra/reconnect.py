"""Waiting out a Redis outage: ping with capped exponential backoff, one log line when it starts, one when it ends.

Long-running processes (workers, the scheduler) call `RedisWatch.wait` before they (re)start their loop and
whenever a Redis call failed, so an outage of any length costs two log lines instead of one per retry, and the
process is still there, with its state, when Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

logger = logging.getLogger(__name__)

# Errors that mean "Redis is not reachable right now" (as opposed to a bad command or bad data).
UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
MAX_BACKOFF = 5.0  # seconds between pings at most: a process resumes within this of Redis coming back


class RedisWatch:
    """Reports one outage per outage for `process` and blocks until Redis answers again."""

    def __init__(self, connection: Redis, process: str, *, stop: threading.Event | None = None):
        self.connection = connection
        self.process = process
        self.stop = stop or threading.Event()
        self._down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def lost(self, exc: BaseException) -> None:
        """Note that a Redis call failed; logs only the first failure of an outage."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        logger.warning(
            "Redis unreachable; waiting for it to come back",
            extra={"proc": self.process, "error": f"{type(exc).__name__}: {exc}"},
        )

    def wait(self) -> bool:
        """Block until Redis answers a PING (returns True) or `stop` is set (returns False)."""
        for attempt in Retrying(
            retry=retry_if_exception_type(UNREACHABLE),
            wait=wait_exponential_jitter(initial=0.5, max=MAX_BACKOFF),
            sleep=self._sleep,
            before_sleep=lambda state: self.lost(state.outcome.exception()),  # type: ignore[union-attr,arg-type]
            reraise=True,
        ):
            with attempt:
                if self.stop.is_set():
                    return False
                self.connection.ping()
        self.recovered()
        return True

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.info(
                "Redis reachable again; resuming",
                extra={"proc": self.process, "down_seconds": round(time.monotonic() - since, 1)},
            )


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While RQ's own handlers are not installed, SIGINT/SIGTERM set `stop` (a wait then ends at once)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
