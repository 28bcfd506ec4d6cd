"""Per-endpoint circuit breaker, kept on the WebhookEndpoint row (consecutive_failures, circuit_open_until).

Closed: attempts go out. After `threshold` consecutive retryable failures it opens for a cool-down (60 s,
doubling with each further failure up to 1 h); deliveries meanwhile are deferred without an attempt. When the
cool-down ends one probe is let through (claimed by a compare-and-set on `circuit_open_until`, so two
workers never both probe); its success closes the breaker, its failure reopens it for twice as long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from connector.infra.models import WebhookEndpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int = 5
    cooldown: timedelta = timedelta(seconds=60)
    max_cooldown: timedelta = timedelta(hours=1)
    probe_lease: timedelta = timedelta(seconds=120)

    def cooldown_after(self, failures: int) -> timedelta:
        """Cool-down once `failures` consecutive failures have happened (threshold or more)."""
        doublings = max(failures - self.threshold, 0)
        if doublings >= 20:
            return self.max_cooldown
        return min(self.cooldown * (2**doublings), self.max_cooldown)


DEFAULT_POLICY = BreakerPolicy()


def admit(
    session: Session, endpoint: WebhookEndpoint, now: datetime, policy: BreakerPolicy = DEFAULT_POLICY
) -> datetime | None:
    """None if an attempt may go out now; otherwise when the delivery should be retried (breaker open).

    An expired cool-down admits exactly one caller as the probe: it moves `circuit_open_until` forward by the
    probe lease so others keep deferring while the probe is in flight.
    """
    open_until = endpoint.circuit_open_until
    if open_until is None:
        return None
    if open_until > now:
        return open_until
    lease_until = now + policy.probe_lease
    claimed = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.circuit_open_until == open_until)
        .values(circuit_open_until=lease_until)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if claimed:
        endpoint.circuit_open_until = lease_until
        logger.info("breaker probe", extra={"endpoint_id": endpoint.id})
        return None
    session.refresh(endpoint)
    return endpoint.circuit_open_until or None


def record_success(endpoint: WebhookEndpoint) -> None:
    if endpoint.consecutive_failures or endpoint.circuit_open_until is not None:
        logger.info("breaker closed", extra={"endpoint_id": endpoint.id})
    endpoint.consecutive_failures = 0
    endpoint.circuit_open_until = None


def record_failure(endpoint: WebhookEndpoint, now: datetime, policy: BreakerPolicy = DEFAULT_POLICY) -> bool:
    """Count a retryable failure; returns True when the breaker (re)opens."""
    endpoint.consecutive_failures = (endpoint.consecutive_failures or 0) + 1
    if endpoint.consecutive_failures < policy.threshold:
        return False
    endpoint.circuit_open_until = now + policy.cooldown_after(endpoint.consecutive_failures)
    logger.warning(
        "breaker opened",
        extra={
            "endpoint_id": endpoint.id,
            "consecutive_failures": endpoint.consecutive_failures,
            "open_until": endpoint.circuit_open_until.isoformat(),
        },
    )
    return True
