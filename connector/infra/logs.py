"""Structured logging: one JSON object per line, request and correlation ids, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_KEYS = re.compile(r"(secret|token|password|authorization|api[_-]?key|credential|cookie)", re.I)
_SECRET_VALUES = [
    re.compile(r"(whsec_)[A-Za-z0-9+/=]{8,}"),
    re.compile(r"(shp(?:at|ua|ca|ss)_)[A-Za-z0-9]{8,}"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I),
    re.compile(r"(gAAAAA)[A-Za-z0-9_=-]{20,}"),
]
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    for pattern in _SECRET_VALUES:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    """Mask values stored under secret-looking keys and secret-looking substrings anywhere."""
    if key and _SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactionFilter(logging.Filter):
    """Scrubs secrets from messages and structured fields before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if record.args:
            record.args = (
                tuple(redact(a) for a in record.args) if isinstance(record.args, tuple) else record.args
            )
        for key in list(vars(record)):
            if key not in _STANDARD:
                setattr(record, key, redact(getattr(record, key), key))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, ids and every `extra` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (rid := request_id_var.get()) is not None:
            entry["request_id"] = rid
        if (cid := correlation_id_var.get()) is not None:
            entry["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


# RQ logs several lines per job and per cron enqueue (about sixty a minute on an idle `storelink up`); below
# DEBUG its loggers show warnings and errors only (failed jobs, lost Redis), at DEBUG everything.
RQ_LOGGERS = ("rq", "rq.worker", "rq.job", "rq.scheduler", "rq.cron", "rq.queue")


def library_level(level: str | int) -> str:
    """The level for chatty libraries' loggers when the process logs at `level`: DEBUG stays DEBUG, anything
    else shows warnings and worse."""
    if isinstance(level, str):
        level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    return logging.getLevelName(logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING))


def configure(level: str = "INFO", json_output: bool = True, stream: Any = None) -> None:
    """Install the root handler once per process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_storelink", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._storelink = True  # type: ignore[attr-defined]
    handler.addFilter(RedactionFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_output
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in RQ_LOGGERS:
        logging.getLogger(name).setLevel(library_level(root.level))


class EveryInterval:
    """True at most once per `seconds` (per process): for log lines that a failing dependency would otherwise
    repeat on every request or delivery."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = -seconds

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True
