"""Installing the Shopify app on a shop (`connector.domain.ports.Installable`): the grant request, the
callback's checks and the code exchanged for an expiring offline token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.shopify import const, oauth
from adapters.shopify.base import ShopifyBase
from connector.domain.errors import AuthError, PermanentError, ValidationError
from connector.domain.ports import HttpOptions, InstallApp
from connector.infra.http import build_session


class ShopifyInstall(ShopifyBase):
    """The install flow of `ShopifyAdapter` (class methods, mixed into it)."""

    @staticmethod
    def _requested_scopes(app: InstallApp) -> list[str]:
        return sorted(oauth.parse_scopes(list(app.scopes))) if app.scopes else sorted(const.REQUIRED_SCOPES)

    @classmethod
    def authorize_url(cls, app: InstallApp, shop: str, state: str, redirect_uri: str) -> str:
        """The shop's grant page for an offline token with the app's scopes, coming back to `redirect_uri`."""
        if not oauth.valid_shop_domain(shop):
            raise ValidationError(
                f"shop {shop!r} is not a <name>.myshopify.com domain",
                code="invalid_shop",
                details={"field": "shop"},
            )
        scopes = cls._requested_scopes(app)
        missing = oauth.missing_scopes(scopes)
        if missing:
            raise PermanentError(
                f"the app asks for scopes without {', '.join(missing)}, which the connector needs",
                code="scopes_misconfigured",
                details={"missing": missing},
            )
        return oauth.permission_url(
            shop.lower(), app.client_id, scopes, redirect_uri, state, base_url=app.admin_base_url
        )

    @classmethod
    def callback_store_ref(cls, app: InstallApp, params: Mapping[str, str]) -> str:
        """The callback's shop domain, once its name and query HMAC (and timestamp) check out."""
        shop = params.get("shop")
        if not oauth.valid_shop_domain(shop):
            raise ValidationError(
                f"shop {shop!r} is not a <name>.myshopify.com domain",
                code="invalid_shop",
                details={"field": "shop"},
            )
        if not oauth.verify_callback(params, app.client_secret):
            raise AuthError("the callback's HMAC or timestamp does not check out", code="invalid_hmac")
        return str(shop).lower()

    @classmethod
    def complete_install(
        cls, app: InstallApp, params: Mapping[str, str], http: HttpOptions
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Check the callback, exchange its code for an expiring offline token and check the granted scopes;
        returns the merchant config and credentials (tokens with both expiry times, and the app's client id
        and secret, which refreshes and webhook checks need)."""
        shop = cls.callback_store_ref(app, params)
        code = params.get("code")
        if not isinstance(code, str) or not code:
            raise ValidationError(
                "the callback carries no code", code="missing_code", details={"field": "code"}
            )
        session = build_session(http)
        try:
            tokens = oauth.exchange_code(
                session,
                shop,
                app.client_id,
                app.client_secret,
                code,
                app.admin_base_url,
                timeout=http.timeout,
            )
        finally:
            session.close()
        missing = oauth.missing_scopes(tokens.scopes)
        if missing:
            raise AuthError(
                f"{shop} granted access without {', '.join(missing)}, which the connector needs",
                code="missing_scopes",
                details={"missing": missing},
            )
        config: dict[str, Any] = {"shop": shop}
        if app.admin_base_url:
            config["base_url"] = app.admin_base_url
        credentials = {
            **tokens.as_credentials(),
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        }
        return cls.validate_config(config), credentials
