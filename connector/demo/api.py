"""The Platform API as the demo calls it: JSON over HTTP with the platform client's key, and a refused call
turned into one line naming the call, the status and the problem's code."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import requests

logger = logging.getLogger(__name__)

TIMEOUT: Final = 30.0
BROWSER: Final = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


class ApiError(Exception):
    """A call answered with a status the demo did not expect."""

    def __init__(self, method: str, path: str, status: int, body: str):
        self.status = status
        self.code, detail = _problem(body)
        super().__init__(
            f"{method} {path} answered {status}" + (f" {self.code}" if self.code else "") + detail
        )


def _problem(body: str) -> tuple[str, str]:
    try:
        document = json.loads(body)
    except ValueError:
        return "", f": {body.strip()[:200]}" if body.strip() else ""
    if not isinstance(document, dict):
        return "", ""
    detail = document.get("detail") or document.get("error") or document.get("title") or ""
    return str(document.get("code") or ""), f": {detail}" if detail else ""


class PlatformApi:
    """Calls to one Storelink web address, with one platform client's API key."""

    def __init__(self, base_url: str, key: str):
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        expect: tuple[int, ...] = (200, 201),
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON answer of `method path`; ApiError when the status is not one of `expect`."""
        response = self.session.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            params=params,
            headers=headers,
            timeout=TIMEOUT,
        )
        if response.status_code not in expect:
            raise ApiError(method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any], **headers: str) -> Any:
        return self.call("POST", path, body, headers=headers or None)

    def close(self) -> None:
        self.session.close()
