"""Liveness and readiness: /healthz answers while the process runs, /readyz checks database and Redis."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text

from connector.runtime import Runtime

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    rt: Runtime = current_app.extensions["storelink"]
    checks: dict[str, dict[str, Any]] = {}
    for name, probe in (("database", lambda: _db(rt)), ("redis", lambda: rt.redis.ping())):
        started = time.perf_counter()
        try:
            probe()
            checks[name] = {"ok": True}
        except Exception as exc:
            logger.warning("readiness check failed", extra={"check": name, "error": str(exc)})
            checks[name] = {"ok": False, "error": type(exc).__name__}
        checks[name]["ms"] = round((time.perf_counter() - started) * 1000, 2)
    ready = all(c["ok"] for c in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _db(rt: Runtime) -> None:
    with rt.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
