"""Liveness and readiness: /healthz answers while the process runs, /readyz checks database and Redis.

/readyz answers 503 within about a second while either is unreachable (Redis is pinged once, without the
client's retries) and 200 again as soon as both answer; a check that starts or stops failing is logged once,
not on every probe."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text

from connector.infra.runtime import Runtime

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

PROBE_TIMEOUT = 1.0
_failing: set[str] = set()  # checks whose last probe in this process failed


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    rt: Runtime = current_app.extensions["storelink"]
    checks: dict[str, dict[str, Any]] = {}
    for name, probe in (("database", lambda: _db(rt)), ("redis", lambda: _redis(rt))):
        started = time.perf_counter()
        try:
            probe()
            checks[name] = {"ok": True}
            if name in _failing:
                _failing.discard(name)
                logger.info("readiness check passes again", extra={"check": name})
        except Exception as exc:
            if name not in _failing:
                _failing.add(name)
                logger.warning("readiness check failed", extra={"check": name, "error": str(exc)})
            checks[name] = {"ok": False, "error": type(exc).__name__}
        checks[name]["ms"] = round((time.perf_counter() - started) * 1000, 2)
    ready = all(c["ok"] for c in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _db(rt: Runtime) -> None:
    with rt.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _redis(rt: Runtime) -> None:
    """One PING on a connection of its own: the shared client retries for seconds before it gives up."""
    probe = Redis.from_url(
        rt.redis_url,
        socket_connect_timeout=PROBE_TIMEOUT,
        socket_timeout=PROBE_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        probe.ping()
    finally:
        probe.close()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
