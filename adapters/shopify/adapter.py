"""The Shopify store adapter: one merchant's shop through the Admin GraphQL API (2026-10), GraphQL only.

Config
    ``shop``                 required: ``<name>.myshopify.com``.
    ``location``             Location GID (or its numeric id) whose ``available`` stock the connector reads and
                             writes; when absent, stock is summed over every location and writes are refused.
    ``inventory_behaviour``  how ``orderCreate`` claims stock: ``BYPASS`` | ``DECREMENT_IGNORING_POLICY`` |
                             ``DECREMENT_OBEYING_POLICY`` (default).
    ``base_url``             another address for the Admin API (the sandbox emulator); default ``https://<shop>``.
    ``bulk``                 full catalog reads through a bulk operation (default true); paged reads otherwise,
                             and whenever the app has no bulk access.
    ``source_name``          order attribution handle for pushed orders (a registered channel handle), optional.
    ``order_tags``           extra tags for pushed orders.  ``test_orders``: mark pushed orders as tests.
Credentials
    ``access_token``; for expiring tokens also ``refresh_token``, ``access_token_expires_at``,
    ``refresh_token_expires_at`` (ISO 8601), ``client_id`` and ``client_secret`` (the refresh needs both);
    ``client_secret`` and ``old_client_secret`` verify webhooks; ``scopes`` (comma-separated, as granted).

Tokens are refreshed shortly before they expire and after a 401. When the composition root sets
``refresh_guard`` (see ``connector.domain.ports.CredentialsGuard``), the refresh runs through it: under a lock of the
merchant's, on the credentials as stored then, so that of several processes only one refreshes and the others
take the pair it stored. Without a guard the adapter refreshes itself and hands the new entries to
``on_tokens_refreshed``. The adapter keeps no state beyond the instance.

Installation (``connector.domain.ports.Installable``): ``authorize_url`` builds the grant request, ``callback_store_ref``
checks the callback's HMAC and shop, ``complete_install`` exchanges the code for an expiring offline token
(``expiring=1``) and checks the granted scopes. The console page embedded in the admin
(``connector.domain.ports.Embeddable``) checks App Bridge session tokens (``embedded``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import requests

from adapters.shopify import const, oauth, queries, webhook
from adapters.shopify.catalog import ShopifyCatalog
from adapters.shopify.client import ShopifyClient
from adapters.shopify.embedded import ShopifyEmbedded
from adapters.shopify.install import ShopifyInstall
from adapters.shopify.orders import ShopifyOrders
from adapters.shopify.tokens import ShopifyTokens
from connector.domain.errors import AuthError, PermanentError, unreadable_input
from connector.domain.ports import (
    Capability,
    CatalogReport,
    HttpOptions,
    InstallApp,
    RateLedger,
    ReportsCatalogSkips,
    WebhookEnvelope,
)
from connector.domain.store_events import StoreEvent
from connector.infra.http import build_session

logger = logging.getLogger(__name__)


class ShopifyAdapter(
    ShopifyTokens, ShopifyInstall, ShopifyEmbedded, ShopifyCatalog, ShopifyOrders, ReportsCatalogSkips
):
    """A Shopify shop, through its Admin GraphQL API: its parts are mixed in from `tokens`, `install`,
    `catalog` (with `inventory`) and `orders`; the shop itself and its webhooks are here."""

    kind: ClassVar[str] = const.KIND
    capabilities: ClassVar[frozenset[Capability]] = const.CAPABILITIES
    install_shop_hint: ClassVar[str] = "<name>.myshopify.com"
    """How `/shopify/install?shop=` is spelled, for the message when it is missing."""

    def __init__(
        self,
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        http: HttpOptions,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.config = self.validate_config(config)
        self._shop = self.config["shop"]
        self._location = self.config["location"]
        self._base_url = self.config["base_url"]
        self._http = http
        self._credentials = {key: str(value) for key, value in credentials.items() if value is not None}
        self._tokens = self._token_set(self._credentials)
        self._secrets = [
            secret
            for secret in (self._credentials.get("client_secret"), self._credentials.get("old_client_secret"))
            if secret
        ]
        self._session = session if session is not None else build_session(http)
        self.client = ShopifyClient(
            self._shop,
            self._access_token,
            http,
            self._session,
            self._base_url,
            on_unauthorized=self._refresh_after_unauthorized,
        )
        self.on_tokens_refreshed = None
        self.refresh_guard = None
        self.sleep = time.sleep
        self.bulk_signal = None
        """Set by the core: waits for `bulk_operations/finish` between polls (see AwaitsBulkSignal)."""
        self._currency = None
        self._report = CatalogReport()

    # -- shop ----------------------------------------------------------------------------------------------

    def check_connection(self) -> None:
        """Read the shop (and the configured location); AuthError for missing scopes or a refused token."""
        if self._tokens is not None and self._tokens.scopes:
            missing = oauth.missing_scopes(self._tokens.scopes)
            if missing:
                raise AuthError(f"{self._shop} did not grant {', '.join(missing)}", code="missing_scopes")
        self._currency = None
        self.currency()
        if self._location is not None:
            found = self.client.execute(queries.LOCATION, {"id": self._location}).get("location")
            if not isinstance(found, dict) or not found.get("isActive", True):
                raise PermanentError(
                    f"location {self._location} does not exist or is inactive in {self._shop}",
                    code="unknown_location",
                )
        logger.info("shop reachable", extra={"shop": self._shop})

    def register_webhooks(self, callback_url: str) -> list[str]:
        """Subscribe `callback_url` to every topic of `const.WEBHOOK_TOPICS`; returns the topics subscribed."""
        done: list[str] = []
        for topic in const.WEBHOOK_TOPICS:
            enum = topic.upper().replace("/", "_")
            variables = {"topic": enum, "uri": callback_url}
            payload = self.client.execute(queries.WEBHOOK_SUBSCRIBE, variables).get(
                "webhookSubscriptionCreate"
            )
            errors = payload.get("userErrors") if isinstance(payload, dict) else None
            if errors and not all("taken" in str(error.get("message", "")) for error in errors):
                raise PermanentError(
                    f"webhook subscription to {topic} refused: {errors[0].get('message')}",
                    code="webhook_subscription",
                    details={"topic": topic, "user_errors": errors},
                )
            done.append(topic)
        return done

    def missing_webhooks(self, callback_url: str) -> list[str]:
        """Topics of `const.WEBHOOK_TOPICS` with no subscription to `callback_url` in the shop now."""
        found: set[str] = set()
        after: str | None = None
        while True:
            page = self.client.execute(queries.WEBHOOK_SUBSCRIPTIONS, {"after": after}).get(
                "webhookSubscriptions"
            )
            if not isinstance(page, dict):
                break
            for node in page.get("nodes") or []:
                if isinstance(node, dict) and node.get("uri") == callback_url:
                    found.add(str(node.get("topic")))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                break
            after = str(info["endCursor"])
        return [topic for topic in const.WEBHOOK_TOPICS if topic.upper().replace("/", "_") not in found]

    @property
    def rate_ledger(self) -> RateLedger | None:
        """The shop's cost bucket shared with other workers (set by the core; see SharesRateLimit)."""
        return self.client.ledger

    @rate_ledger.setter
    def rate_ledger(self, ledger: RateLedger | None) -> None:
        self.client.ledger = ledger

    # -- webhooks (adapters.shopify.webhook) ----------------------------------------------------------------

    @classmethod
    def webhook_store_ref(cls, headers: Mapping[str, str]) -> str | None:
        """The shop domain of `X-Shopify-Shop-Domain`."""
        return webhook.store_ref(headers)

    @classmethod
    def webhook_topic(cls, headers: Mapping[str, str]) -> str | None:
        """The topic of `X-Shopify-Topic` (for logs; None when absent)."""
        return headers.get(webhook.TOPIC_HEADER)

    @classmethod
    def verify_app_webhook(cls, app: InstallApp, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """HMAC of the raw body with the app's client secret (deliveries of shops with no merchant here)."""
        return webhook.verify((app.client_secret,), headers, raw_body)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """HMAC of the raw body with `client_secret` or `old_client_secret`; False when there is neither."""
        return webhook.verify(self._secrets, headers, raw_body)

    def webhook_envelope(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEnvelope:
        with unreadable_input("the delivery"):
            return webhook.envelope(headers, raw_body)

    def parse_webhook(self, topic: str, headers: Mapping[str, str], raw_body: bytes) -> list[StoreEvent]:
        """The delivery's store events, from the delivery alone (no API call): an inventory delivery names
        the inventory item and location; the core resolves the variant and applies the location rule."""
        triggered = webhook.envelope_time(headers)
        with unreadable_input("the delivery"):
            return webhook.parse(topic, raw_body, triggered, webhook.store_ref(headers) or self._shop)
