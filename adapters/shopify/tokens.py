"""The Shopify adapter's access tokens: read from the credentials, refreshed before they expire and after a
401 (through the core's `refresh_guard` when set)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from adapters.shopify import mapper, oauth
from adapters.shopify.base import ShopifyBase
from connector.domain.errors import AuthError


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return mapper.parse_time(value)
    except ValueError:
        return None


class ShopifyTokens(ShopifyBase):
    """Token keeping of `ShopifyAdapter` (mixed into it)."""

    @staticmethod
    def _token_set(credentials: Mapping[str, str]) -> oauth.TokenSet | None:
        token = credentials.get("access_token")
        if not token:
            return None
        return oauth.TokenSet(
            access_token=token,
            refresh_token=credentials.get("refresh_token") or None,
            expires_at=_time(credentials.get("access_token_expires_at")),
            refresh_expires_at=_time(credentials.get("refresh_token_expires_at")),
            scopes=oauth.parse_scopes(credentials.get("scopes", "")),
        )

    def _can_refresh(self) -> bool:
        return bool(
            self._tokens is not None
            and self._tokens.refresh_token
            and self._credentials.get("client_id")
            and self._credentials.get("client_secret")
        )

    def _access_token(self) -> str:
        if self._tokens is None:
            raise AuthError(f"no access token for {self._shop}", code="no_token")
        if self._tokens.expired() and self._can_refresh():
            self.refresh_tokens()
        return self._tokens.access_token

    def _refresh_after_unauthorized(self) -> bool:
        if not self._can_refresh():
            return False
        self.refresh_tokens()
        return True

    def refresh_tokens(self) -> oauth.TokenSet:
        """Replace the access token: through `refresh_guard` when set (which may hand back a pair another
        process stored meanwhile), else by a refresh of our own handed to `on_tokens_refreshed`."""
        if self._tokens is None or not self._can_refresh():
            raise AuthError(f"{self._shop}: no refresh token and client credentials", code="no_refresh_token")
        held = self._tokens.access_token
        produced: list[dict[str, str]] = []

        def refresh(stored: Mapping[str, str]) -> dict[str, str] | None:
            current = self._token_set(stored)
            if current is not None and current.access_token != held and not current.expired():
                return None  # another process refreshed while we waited for the lock
            entries = self._refreshed(stored)
            produced.append(entries)
            return entries

        if self.refresh_guard is not None:
            credentials = {key: str(value) for key, value in self.refresh_guard(refresh).items()}
        else:
            credentials = {**self._credentials, **(refresh(self._credentials) or {})}
        tokens = self._token_set(credentials)
        if tokens is None:
            raise AuthError(f"no access token for {self._shop} after a refresh", code="no_token")
        self._credentials = credentials
        self._tokens = tokens
        if produced and self.on_tokens_refreshed is not None:
            self.on_tokens_refreshed(produced[-1])
        return tokens

    def _refreshed(self, stored: Mapping[str, str]) -> dict[str, str]:
        """The credential entries of a new pair for the refresh token in `stored`."""
        client_id, secret = stored.get("client_id"), stored.get("client_secret")
        refresh_token = stored.get("refresh_token")
        if not (client_id and secret and refresh_token):
            raise AuthError(f"{self._shop}: no refresh token and client credentials", code="no_refresh_token")
        tokens = oauth.refresh(
            self._session,
            self._shop,
            client_id,
            secret,
            refresh_token,
            self._base_url,
            timeout=self._http.timeout,
        )
        if not tokens.scopes:
            tokens = replace(tokens, scopes=oauth.parse_scopes(stored.get("scopes", "")))
        # Every token entry is replaced: one the answer lacks (no expiry) must not outlive the old pair.
        blank = dict.fromkeys(("refresh_token", "access_token_expires_at", "refresh_token_expires_at"), "")
        return {**blank, **tokens.as_credentials()}

    @property
    def credentials(self) -> dict[str, str]:
        """The current credentials, refreshed tokens included."""
        return dict(self._credentials)
