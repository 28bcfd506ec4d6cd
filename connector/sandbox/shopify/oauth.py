"""Shopify's authorization code grant, emulated: the authorize redirect with a signed callback query, the code
exchange for (expiring) offline tokens, refresh-token rotation, and access-token checks for the Admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

ACCESS_TOKEN_TTL: Final = 3600
REFRESH_TOKEN_TTL: Final = 90 * 24 * 3600
INVALID_TOKEN: Final = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105


def query_hmac(params: Mapping[str, str], secret: str) -> str:
    """Shopify's OAuth query HMAC: hex SHA-256 over the sorted `k=v` pairs joined by `&`, without `hmac`."""
    message = "&".join(
        f"{key}={value}" for key, value in sorted(params.items()) if key not in ("hmac", "signature")
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass
class App:
    """The app installed on the shop (its client credentials and the scopes it is granted)."""

    client_id: str = "storelink-client-id"
    client_secret: str = "storelink-client-secret"  # noqa: S105
    scopes: str = "read_products,read_inventory,write_inventory,read_locations,read_orders,write_orders"


@dataclass
class AccessToken:
    token: str
    scope: str
    expires_at: float | None
    used: bool = False


@dataclass
class RefreshToken:
    token: str
    expires_at: float
    replacement: AccessToken | None = None
    successor: str | None = None
    revoked: bool = False


@dataclass
class _Code:
    scope: str
    issued_at: float


@dataclass
class OAuth:
    """Codes, access tokens and refresh tokens of one shop, for one app."""

    app: App
    shop_domain: str
    clock: Callable[[], float]
    access_ttl: int = ACCESS_TOKEN_TTL
    refresh_ttl: int = REFRESH_TOKEN_TTL
    _codes: dict[str, _Code] = field(default_factory=dict)
    _access: dict[str, AccessToken] = field(default_factory=dict)
    _refresh: dict[str, RefreshToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- tokens for tests --------------------------------------------------------------------------------

    def add_access_token(self, token: str, *, expires_in: float | None = None) -> None:
        """Accept `token` on the Admin API (never expiring unless `expires_in` is given)."""
        with self._lock:
            expires = None if expires_in is None else self.clock() + expires_in
            self._access[token] = AccessToken(token, self.app.scopes, expires)

    def check(self, token: str | None) -> bool:
        """Whether the Admin API accepts `token` now (marks it used: its refresh predecessor retires)."""
        with self._lock:
            found = self._access.get(token or "")
            if found is None or (found.expires_at is not None and self.clock() >= found.expires_at):
                return False
            found.used = True
            return True

    # --- authorize ---------------------------------------------------------------------------------------

    def authorize(self, params: Mapping[str, str]) -> tuple[int, dict[str, Any] | str]:
        """(302, redirect URL) back to the app, or (400, error body)."""
        if params.get("client_id") != self.app.client_id:
            return 400, {"error": "invalid_request", "error_description": "Invalid client_id"}
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return 400, {"error": "invalid_request", "error_description": "The redirect_uri is missing"}
        requested = params.get("scope") or self.app.scopes
        granted = ",".join(scope.strip() for scope in requested.split(",") if scope.strip())
        code = secrets.token_hex(16)
        now = self.clock()
        with self._lock:
            self._codes[code] = _Code(granted, now)
        shop_name = self.shop_domain.split(".", 1)[0]
        callback = {
            "code": code,
            "host": base64.b64encode(f"admin.shopify.com/store/{shop_name}".encode()).decode().rstrip("="),
            "shop": self.shop_domain,
            "timestamp": str(int(now)),
        }
        if params.get("state") is not None:
            callback["state"] = params["state"]
        callback["hmac"] = query_hmac(callback, self.app.client_secret)
        separator = "&" if "?" in redirect_uri else "?"
        return 302, f"{redirect_uri}{separator}{urlencode(callback)}"

    # --- token endpoint ----------------------------------------------------------------------------------

    def token(self, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if (
            params.get("client_id") != self.app.client_id
            or params.get("client_secret") != self.app.client_secret
        ):
            return 400, {"error": "invalid_client", "error_description": "Client credentials are invalid"}
        if params.get("grant_type") == "refresh_token":
            return self._refresh_grant(str(params.get("refresh_token") or ""))
        code = str(params.get("code") or "")
        with self._lock:
            found = self._codes.pop(code, None)
        if found is None:
            return 400, {
                "error": "invalid_request",
                "error_description": "The authorization code was not found or was already used",
            }
        expiring = str(params.get("expiring", "0")) in ("1", "true", "True")
        return 200, self._issue(found.scope, expiring)

    def _issue(self, scope: str, expiring: bool) -> dict[str, Any]:
        now = self.clock()
        access = AccessToken(
            f"shpat_{secrets.token_hex(16)}", scope, now + self.access_ttl if expiring else None
        )
        answer: dict[str, Any] = {"access_token": access.token, "scope": scope}
        with self._lock:
            self._access[access.token] = access
            if expiring:
                refresh = RefreshToken(
                    f"shprt_{secrets.token_hex(16)}", now + self.refresh_ttl, replacement=access
                )
                self._refresh[refresh.token] = refresh
                answer.update(
                    expires_in=self.access_ttl,
                    refresh_token=refresh.token,
                    refresh_token_expires_in=self.refresh_ttl,
                )
        return answer

    def _refresh_grant(self, token: str) -> tuple[int, dict[str, Any]]:
        """Rotate: a new access token and refresh token. The old refresh token keeps working only until its
        replacement is used (the new access token on the API, or the new refresh token)."""
        invalid = (
            400,
            {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired"},
        )
        with self._lock:
            found = self._refresh.get(token)
            if found is None or found.revoked or self.clock() >= found.expires_at:
                return invalid
            successor = self._refresh.get(found.successor or "")
            if successor is not None:
                if successor.successor is not None or (successor.replacement and successor.replacement.used):
                    found.revoked = True
                    return invalid
                successor.revoked = True
            scope = found.replacement.scope if found.replacement else self.app.scopes
            expires_at = found.expires_at
        answer = self._issue(scope, True)
        with self._lock:
            new = self._refresh[answer["refresh_token"]]
            new.expires_at = min(new.expires_at, expires_at)
            answer["refresh_token_expires_in"] = int(new.expires_at - self.clock())
            found.successor = new.token
        return 200, answer
