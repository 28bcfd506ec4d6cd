"""What an attempt's outcome means and when the next attempt is due (Svix's schedule with jitter)."""

from __future__ import annotations

import enum
import logging
import random
from datetime import datetime, timedelta

logger = logging.getLogger(__name__)

# Delays after the 1st, 2nd, ... failed attempt; an 8th failure is final.
SCHEDULE: tuple[int, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
JITTER = 0.2
MAX_ATTEMPTS = len(SCHEDULE) + 1


class Outcome(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"  # 408, 429, 5xx, network errors
    FAIL = "fail"  # other 3xx and 4xx: final
    GONE = "gone"  # 410: final, and the endpoint is disabled


def classify(status_code: int | None, *, blocked: bool = False) -> Outcome:
    """2xx success; 408, 429, 5xx and no response retry; 410 gone; other 3xx/4xx (and refused addresses) fail."""
    if blocked:
        return Outcome.FAIL
    if status_code is None:
        return Outcome.RETRY
    if 200 <= status_code < 300:
        return Outcome.SUCCESS
    if status_code == 410:
        return Outcome.GONE
    if status_code in (408, 429) or status_code >= 500:
        return Outcome.RETRY
    return Outcome.FAIL


def next_delay(
    attempts_done: int, *, retry_after: float | None = None, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after `attempts_done` attempts, or None when retries are exhausted.

    The schedule's delay varies by ±20% so a burst of failures does not return in lockstep; a Retry-After
    from the receiver is a floor.
    """
    if attempts_done < 1 or attempts_done > len(SCHEDULE):
        return None
    base = SCHEDULE[attempts_done - 1]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None and retry_after > delay:
        delay = float(retry_after)
    return delay


def next_attempt_at(
    now: datetime, attempts_done: int, *, retry_after: float | None = None, rng: random.Random | None = None
) -> datetime | None:
    delay = next_delay(attempts_done, retry_after=retry_after, rng=rng)
    return None if delay is None else now + timedelta(seconds=delay)
