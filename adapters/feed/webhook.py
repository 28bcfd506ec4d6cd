"""Inbound deliveries for feed stores: a feed has no webhooks, so none is ever accepted."""

from __future__ import annotations

from collections.abc import Mapping

from connector.domain.events import StoreEvent
from connector.errors import PermanentError


def verify_webhook(headers: Mapping[str, str], raw_body: bytes) -> bool:
    """Always False: nothing may claim to be a feed store's webhook."""
    return False


def parse_webhook(topic: str, headers: Mapping[str, str], raw_body: bytes) -> list[StoreEvent]:
    """Always raises: feed stores send no webhooks, so any delivery is refused."""
    raise PermanentError(f"feed stores send no webhooks (topic {topic!r} refused)", code="unsupported")
