"""Shopify OAuth (authorization code grant) as plain functions: install URL, callback checks, token exchange.

Tokens are expiring offline tokens (`expiring=1`): an access token for about an hour and a refresh token for
90 days that rotates on every refresh, so a refresh returns a new pair that must be stored in one write.
The callback query HMAC is checked with ShopifyAPI's `shopify.Session.validate_params` (timestamp at most a
day old, then HMAC over the sorted parameters) through a subclass that carries the client secret, so the
library's class-level `Session.secret` is never set. ShopifyAPI is imported on use: importing it also loads
its REST resource layer, which nothing else here needs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

import requests

from adapters.shopify import const
from connector.domain.errors import AuthError, PermanentError, RetryableError, ValidationError
from connector.infra.http import error_for_response, transport_errors

logger = logging.getLogger(__name__)

_SHOP = re.compile(const.SHOP_DOMAIN_PATTERN)
TOKEN_PATH: Final = "/admin/oauth/access_token"  # noqa: S105 (a URL path)
DEFAULT_TIMEOUT: Final = 15.0


def valid_shop_domain(shop: object) -> bool:
    """True for a `<name>.myshopify.com` host name and nothing else (no scheme, path or port)."""
    return isinstance(shop, str) and len(shop) <= 255 and _SHOP.fullmatch(shop) is not None


def _require_shop(shop: str) -> str:
    if not valid_shop_domain(shop):
        raise ValidationError(
            f"shop {shop!r} is not a <name>.myshopify.com domain", details={"field": "shop"}
        )
    return shop.lower()


def permission_url(
    shop: str,
    client_id: str,
    scopes: Iterable[str],
    redirect_uri: str,
    state: str,
    base_url: str | None = None,
) -> str:
    """Where to send the merchant to grant access: an offline-token authorization request (at `base_url`,
    the emulator, instead of `https://<shop>` when given)."""
    query = urlencode(
        {"client_id": client_id, "scope": ",".join(scopes), "redirect_uri": redirect_uri, "state": state}
    )
    host = _require_shop(shop)
    origin = (base_url or f"https://{host}").rstrip("/")
    return f"{origin}/admin/oauth/authorize?{query}"


def verify_callback(params: Mapping[str, Any], client_secret: str) -> bool:
    """True when the callback's `hmac` matches its other parameters, its timestamp is under a day old and it
    names a valid shop. The caller still compares `state` with the nonce it issued."""
    import shopify  # on use: see the module docstring

    if not client_secret or not isinstance(params.get("hmac"), str):
        return False
    if not valid_shop_domain(params.get("shop")):
        return False
    checker: Any = type("_CallbackSession", (shopify.Session,), {"secret": client_secret})
    try:
        return bool(checker.validate_params(dict(params)))
    except (TypeError, ValueError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An access token with its refresh token and both expiry times (None when the token does not expire)."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    refresh_expires_at: datetime | None
    scopes: frozenset[str]

    def expired(
        self, now: datetime | None = None, margin: float = const.TOKEN_REFRESH_MARGIN_SECONDS
    ) -> bool:
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at - timedelta(seconds=margin)

    def as_credentials(self) -> dict[str, str]:
        """The credential entries this token set fills (times as ISO 8601, scopes comma-separated)."""
        data = {"access_token": self.access_token, "scopes": ",".join(sorted(self.scopes))}
        if self.refresh_token:
            data["refresh_token"] = self.refresh_token
        if self.expires_at:
            data["access_token_expires_at"] = self.expires_at.isoformat()
        if self.refresh_expires_at:
            data["refresh_token_expires_at"] = self.refresh_expires_at.isoformat()
        return data


def parse_scopes(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(str(part).strip() for part in value if str(part).strip())
    return frozenset()


def missing_scopes(
    granted: Iterable[str] | str, required: Iterable[str] = const.REQUIRED_SCOPES
) -> list[str]:
    """Required scopes the grant lacks, sorted; a `write_x` grant covers `read_x`."""
    have = parse_scopes(granted if isinstance(granted, str) else list(granted))
    implied = have | {"read_" + scope[len("write_") :] for scope in have if scope.startswith("write_")}
    return sorted(scope for scope in set(required) if scope not in implied)


def _seconds(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PermanentError(f"token response {name} is not a number", code="bad_token_response")
    try:
        return float(value)
    except ValueError:
        raise PermanentError(f"token response {name} is not a number", code="bad_token_response") from None


def token_set(body: Mapping[str, Any], now: datetime | None = None) -> TokenSet:
    """A token response as a `TokenSet`. A missing `expires_in` means a token that does not expire (never 0)."""
    now = now or datetime.now(UTC)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise PermanentError("token response has no access_token", code="bad_token_response")
    refresh_token = body.get("refresh_token")
    expires_in = _seconds(body.get("expires_in"), "expires_in")
    refresh_in = _seconds(body.get("refresh_token_expires_in"), "refresh_token_expires_in")
    return TokenSet(
        access_token=token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
        refresh_expires_at=now + timedelta(seconds=refresh_in) if refresh_in else None,
        scopes=parse_scopes(body.get("scope")),
    )


def _post_token(
    session: requests.Session, shop: str, data: Mapping[str, str], base_url: str | None, timeout: float
) -> TokenSet:
    url = f"{(base_url or 'https://' + _require_shop(shop)).rstrip('/')}{TOKEN_PATH}"
    with transport_errors():
        response = session.post(url, json=dict(data), headers={"Accept": "application/json"}, timeout=timeout)
        status = response.status_code
        body: object = None
        try:
            body = response.json()
        except ValueError:
            body = None
    if status == 400 and isinstance(body, dict) and body.get("error") in ("invalid_grant", "invalid_request"):
        raise AuthError(
            f"{shop} refused the grant ({body.get('error')}): the merchant must authorize again",
            code="invalid_grant",
            details={"status": status, "error": body.get("error")},
        )
    if status in (400, 401) and isinstance(body, dict) and body.get("error") == "invalid_client":
        raise AuthError(
            f"{shop} refused the app credentials", code="invalid_client", details={"status": status}
        )
    error = error_for_response(response)
    if error is not None:
        response.close()
        raise error
    if not isinstance(body, dict):
        raise RetryableError(f"token response from {shop} is not a JSON object", code="bad_response")
    return token_set(body)


def exchange_code(
    session: requests.Session,
    shop: str,
    client_id: str,
    client_secret: str,
    code: str,
    base_url: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> TokenSet:
    """Trade the callback's authorization code for an expiring offline token and its refresh token."""
    data = {"client_id": client_id, "client_secret": client_secret, "code": code, "expiring": "1"}
    tokens = _post_token(session, shop, data, base_url, timeout)
    logger.info("shop authorized", extra={"shop": shop, "scopes": ",".join(sorted(tokens.scopes))})
    return tokens


def refresh(
    session: requests.Session,
    shop: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    base_url: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> TokenSet:
    """A new token pair for `refresh_token` (which Shopify then retires): store both at once."""
    if not refresh_token:
        raise AuthError(
            f"no refresh token for {shop}: the merchant must authorize again", code="no_refresh_token"
        )
    data = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    tokens = _post_token(session, shop, data, base_url, timeout)
    logger.info("access token refreshed", extra={"shop": shop})
    return tokens
