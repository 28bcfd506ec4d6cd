"""The Walmart emulator's error envelopes and the exception that carries one out of a request handler.

Three shapes, as Walmart sends them:

- resource errors (items, inventory, feeds, orders, webhooks):
  ``{"errors": [{"code", "field", "description", "info", "severity", "category", "causes", "errorIdentifiers"}]}``
- gateway errors (token, authentication, throttling, 5xx from the gateway), with the singular key:
  ``{"error": [{"code": "UNAUTHORIZED.GMP_GATEWAY_API", "field", "description", "info", "severity", "category",
  "causes": [], "errorIdentifiers": {}}]}``
- Multichannel Solutions errors: ``{"status": "FAIL", "errors": [{"code", "field", "description", "info",
  "severity", "category"}]}``
"""

from __future__ import annotations

from typing import Any

SEVERITY_ERROR = "ERROR"


def error_entry(
    code: str,
    description: str,
    *,
    field: str = "",
    info: str = "",
    category: str = "REQUEST",
    severity: str = SEVERITY_ERROR,
) -> dict[str, Any]:
    """One element of an `errors`/`error` array."""
    return {
        "code": code,
        "field": field,
        "description": description,
        "info": info or description,
        "severity": severity,
        "category": category,
        "causes": [],
        "errorIdentifiers": {},
    }


def resource_errors(
    code: str, description: str, *, field: str = "", info: str = "", category: str = "REQUEST"
) -> dict[str, Any]:
    return {"errors": [error_entry(code, description, field=field, info=info, category=category)]}


def gateway_error(
    code: str, description: str, *, field: str = "", info: str = "", category: str = "DATA"
) -> dict[str, Any]:
    return {"error": [error_entry(code, description, field=field, info=info, category=category)]}


def mcs_errors(
    code: str, description: str, *, field: str = "", info: str = "", category: str = "REQUEST"
) -> dict[str, Any]:
    entry = {
        "code": code,
        "field": field,
        "description": description,
        "info": info or description,
        "severity": SEVERITY_ERROR,
        "category": category,
    }
    return {"status": "FAIL", "errors": [entry]}


class WalmartError(Exception):
    """Raised by handlers and the store: answer `status` with `body` (an envelope above, or None for no body)."""

    def __init__(self, status: int, body: dict[str, Any] | None, *, retry_after: float | None = None):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @classmethod
    def resource(
        cls, status: int, code: str, description: str, *, field: str = "", info: str = ""
    ) -> WalmartError:
        return cls(status, resource_errors(code, description, field=field, info=info))

    @classmethod
    def gateway(
        cls, status: int, code: str, description: str, *, field: str = "", info: str = ""
    ) -> WalmartError:
        return cls(status, gateway_error(code, description, field=field, info=info))

    @classmethod
    def mcs(
        cls, status: int, code: str, description: str, *, field: str = "", info: str = ""
    ) -> WalmartError:
        return cls(status, mcs_errors(code, description, field=field, info=info))

    @classmethod
    def bad_param(cls, field: str, description: str) -> WalmartError:
        return cls.resource(400, "INVALID_REQUEST_PARAM", description, field=field)

    @classmethod
    def missing_param(cls, field: str) -> WalmartError:
        return cls.resource(400, "MISSING_REQUEST_PARAM", f"Missing required parameter {field}", field=field)

    @classmethod
    def bad_content(cls, field: str, description: str) -> WalmartError:
        return cls.resource(400, "INVALID_REQUEST_CONTENT", description, field=field)

    @classmethod
    def not_found(cls, description: str, *, field: str = "") -> WalmartError:
        return cls.resource(
            404, "CONTENT_NOT_FOUND", description, field=field, info="Requested content could not be found."
        )
