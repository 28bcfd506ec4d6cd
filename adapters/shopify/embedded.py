"""The console page embedded in the Shopify admin (`connector.domain.ports.Embeddable`): session tokens checked
with ShopifyAPI's `session_token` helpers, and the page's frame ancestors and App Bridge script."""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

from adapters.shopify import oauth
from adapters.shopify.base import ShopifyBase
from connector.domain.errors import AuthError
from connector.domain.ports import EmbedPage, InstallApp

logger = logging.getLogger(__name__)

APP_BRIDGE: Final = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
"""App Bridge, which Shopify requires from its own CDN as the first script of an embedded app's page."""
ADMIN: Final = "https://admin.shopify.com"


class ShopifyEmbedded(ShopifyBase):
    """The embedded console page of `ShopifyAdapter` (class methods, mixed into it)."""

    @classmethod
    def session_token_store_ref(cls, app: InstallApp, token: str) -> str:
        """The shop a session token is for, once its signature (the app's secret), audience (the app's
        client id), expiry (ShopifyAPI's 10 s leeway), required claims and issuer/destination match."""
        # ShopifyAPI's package takes half a second to import: only the embedded page loads it.
        from shopify import session_token

        try:
            claims = session_token.decode_from_header(f"Bearer {token}", app.client_id, app.client_secret)
        except session_token.SessionTokenError as exc:
            raise AuthError(
                f"the session token does not check out: {exc}", code="invalid_session_token"
            ) from None
        shop = urlsplit(str(claims.get("dest", ""))).hostname or ""
        if not oauth.valid_shop_domain(shop):
            raise AuthError("the session token names no shop", code="invalid_session_token")
        return shop.lower()

    @classmethod
    def embed_page(cls, app: InstallApp, store_ref: str) -> EmbedPage:
        return EmbedPage(
            frame_ancestors=(f"https://{store_ref}", ADMIN),
            scripts=(APP_BRIDGE,),
            meta=(("shopify-api-key", app.client_id),),
        )
