"""The JSON body of one event: `{"type", "timestamp", "data"}`, the same bytes for every endpoint and attempt."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime
from threading import Lock
from typing import Any

import orjson

from connector.infra.models import EventPayload

logger = logging.getLogger(__name__)

_CACHE_SIZE = 1024
_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = Lock()


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z` suffix and microseconds: `2025-01-01T12:00:00.000000Z`."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for an event timestamp")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(event_type: str, occurred_at: datetime, data: dict[str, Any]) -> bytes:
    """Deterministic bytes: keys sorted at every level, so the stored row always gives the same body
    (PostgreSQL's JSONB does not keep key order)."""
    document = {"type": event_type, "timestamp": iso_utc(occurred_at), "data": data}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def body_for(payload: EventPayload) -> bytes:
    """The body of `payload`, built once per process and reused (payload rows never change)."""
    with _lock:
        cached = _cache.get(payload.id)
        if cached is not None:
            _cache.move_to_end(payload.id)
            return cached
    body = encode(payload.type, payload.occurred_at, payload.data)
    with _lock:
        _cache[payload.id] = body
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return body
