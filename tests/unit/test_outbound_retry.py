"""Outcome classification, the retry schedule with jitter, Retry-After, and the breaker's cool-downs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from webhooks.outbound.breaker import BreakerPolicy
from webhooks.outbound.retry import MAX_ATTEMPTS, SCHEDULE, Outcome, classify, next_attempt_at, next_delay


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (299, Outcome.SUCCESS),
        (301, Outcome.FAIL),
        (302, Outcome.FAIL),
        (400, Outcome.FAIL),
        (401, Outcome.FAIL),
        (404, Outcome.FAIL),
        (408, Outcome.RETRY),
        (410, Outcome.GONE),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (504, Outcome.RETRY),
        (None, Outcome.RETRY),
    ],
)
def test_classify(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_refused_address_is_final() -> None:
    assert classify(None, blocked=True) is Outcome.FAIL


def test_schedule_is_svix_like_with_twenty_percent_jitter() -> None:
    assert SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert MAX_ATTEMPTS == 8
    rng = random.Random(7)
    for attempts, base in enumerate(SCHEDULE, start=1):
        delays = [next_delay(attempts, rng=rng) for _ in range(200)]
        assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len({round(d or 0, 6) for d in delays}) > 100  # jittered, not constant
    assert next_delay(len(SCHEDULE) + 1) is None
    assert next_delay(0) is None


def test_retry_after_is_a_floor() -> None:
    assert next_delay(1, retry_after=120) == 120.0
    delay = next_delay(3, retry_after=10)
    assert delay is not None and delay >= 1800 * 0.8
    now = datetime(2025, 1, 1, tzinfo=UTC)
    when = next_attempt_at(now, 1, retry_after=120)
    assert when is not None and when - now >= timedelta(seconds=120)


def test_breaker_cooldown_doubles_up_to_an_hour() -> None:
    policy = BreakerPolicy()
    assert policy.cooldown_after(5) == timedelta(seconds=60)
    assert policy.cooldown_after(6) == timedelta(seconds=120)
    assert policy.cooldown_after(7) == timedelta(seconds=240)
    assert policy.cooldown_after(12) == timedelta(hours=1)
    assert policy.cooldown_after(500) == timedelta(hours=1)
