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
(``expiring=1``) and checks the granted scopes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import requests

from adapters.shopify import const, mapper, oauth, queries, webhook
from adapters.shopify.client import ShopifyClient
from connector.domain.catalog import InventoryLevel, Product
from connector.domain.errors import (
    AuthError,
    PermanentError,
    RetryableError,
    ValidationError,
    unreadable_input,
)
from connector.domain.events import StoreEvent
from connector.domain.orders import ExternalOrderRef, Order
from connector.domain.ports import (
    BulkSignal,
    Capability,
    CatalogReport,
    CredentialsGuard,
    HttpOptions,
    InstallApp,
    RateLedger,
    ReportsCatalogSkips,
    WebhookEnvelope,
)
from connector.infra.http import build_session

logger = logging.getLogger(__name__)

DEFAULT_LOCATION: Final = "default"
"""The location ref of stock summed over every location (the core's default home location)."""
_MAX_TEXT: Final = 200
_STALE_ATTEMPTS: Final = 3


@dataclass(frozen=True, slots=True)
class BulkStatus:
    """A bulk operation as last polled."""

    id: str
    status: str
    error_code: str | None = None
    object_count: int = 0
    url: str | None = None
    partial_data_url: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{key} must be text, got {type(value).__name__}", details={"field": key})
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise ValidationError(f"{key} is longer than {_MAX_TEXT} characters", details={"field": key})
    return value or None


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ValidationError(f"{key} must be true or false", details={"field": key})
    return value


def _location(value: str | None) -> str | None:
    if value is None:
        return None
    if value.isdigit():
        return mapper.gid("Location", value)
    if mapper.gid_type(value) != "Location" or not value.rsplit("/", 1)[-1].isdigit():
        raise ValidationError(
            f"location {value!r} is not a Location GID (gid://shopify/Location/<id>) or id",
            details={"field": "location"},
        )
    return value


def _base_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(f"base_url {value!r} is not an http(s) URL", details={"field": "base_url"})
    if parts.username or parts.password:
        raise ValidationError("base_url must not embed credentials", details={"field": "base_url"})
    return value.rstrip("/")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return mapper.parse_time(value)
    except ValueError:
        return None


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ShopifyAdapter(ReportsCatalogSkips):
    """A Shopify shop, through its Admin GraphQL API."""

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
        self._shop: str = self.config["shop"]
        self._location: str | None = self.config["location"]
        self._base_url: str | None = self.config["base_url"]
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
        self.on_tokens_refreshed: Callable[[dict[str, str]], None] | None = None
        self.refresh_guard: CredentialsGuard | None = None
        self.sleep: Callable[[float], None] = time.sleep
        self.bulk_signal: BulkSignal | None = None
        """Set by the core: waits for `bulk_operations/finish` between polls (see AwaitsBulkSignal)."""
        self._currency: str | None = None
        self._report = CatalogReport()

    # -- configuration -------------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized config, or raise ValidationError naming the field and the problem."""
        if not isinstance(config, Mapping):
            raise ValidationError("shopify config must be an object")
        unknown = sorted(str(key) for key in config if key not in const.CONFIG_KEYS)
        if unknown:
            raise ValidationError(
                f"unknown shopify config key(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(const.CONFIG_KEYS))}",
                details={"fields": unknown},
            )
        shop = (_text(config, "shop") or "").lower()
        if not oauth.valid_shop_domain(shop):
            raise ValidationError(
                f"shop {shop!r} is not a <name>.myshopify.com domain" if shop else "shop is required",
                details={"field": "shop"},
            )
        behaviour = (_text(config, "inventory_behaviour") or const.DEFAULT_INVENTORY_BEHAVIOUR).upper()
        if behaviour not in const.INVENTORY_BEHAVIOURS:
            raise ValidationError(
                f"inventory_behaviour {behaviour!r} is not one of {', '.join(sorted(const.INVENTORY_BEHAVIOURS))}",
                details={"field": "inventory_behaviour"},
            )
        tags = config.get("order_tags") or []
        if not isinstance(tags, list | tuple) or not all(
            isinstance(tag, str) and 0 < len(tag.strip()) <= 40 for tag in tags
        ):
            raise ValidationError(
                "order_tags must be a list of tags of 1 to 40 characters", details={"field": "order_tags"}
            )
        return {
            "shop": shop,
            "location": _location(_text(config, "location")),
            "inventory_behaviour": behaviour,
            "base_url": _base_url(_text(config, "base_url")),
            "bulk": _flag(config, "bulk", True),
            "source_name": _text(config, "source_name"),
            "order_tags": [tag.strip() for tag in tags],
            "test_orders": _flag(config, "test_orders", False),
        }

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        """The shop's myshopify.com domain, lower-cased."""
        shop: str = cls.validate_config(config)["shop"]
        return shop

    # -- tokens --------------------------------------------------------------------------------------------

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

    # -- installation (connector.domain.ports.Installable) --------------------------------------------------------

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

    # -- shop ----------------------------------------------------------------------------------------------

    def currency(self) -> str:
        """The shop's currency (read once per adapter)."""
        if self._currency is None:
            shop = self.client.execute(queries.SHOP).get("shop") or {}
            code = shop.get("currencyCode") if isinstance(shop, dict) else None
            if not isinstance(code, str) or len(code) != 3:
                raise PermanentError(f"{self._shop} reported no currency", code="graphql_no_data")
            self._currency = code
        return self._currency

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

    @property
    def rate_ledger(self) -> RateLedger | None:
        """The shop's cost bucket shared with other workers (set by the core; see SharesRateLimit)."""
        return self.client.ledger

    @rate_ledger.setter
    def rate_ledger(self, ledger: RateLedger | None) -> None:
        self.client.ledger = ledger

    # -- catalog -------------------------------------------------------------------------------------------

    def iter_catalog(self, since: datetime | None = None) -> Iterator[Product]:
        """Stream the catalog: a bulk export when `since` is None (and bulk is on), else pages of products
        updated since `since` less an overlap. Products may come in parts (see mapper.BulkAssembler)."""
        self._report = CatalogReport()
        return self._catalog(since, self._report)

    def _catalog(self, since: datetime | None, report: CatalogReport) -> Generator[Product, None, None]:
        if since is None and self.config["bulk"]:
            try:
                operation = self.start_bulk_catalog()
            except (AuthError, PermanentError) as exc:
                if exc.code not in ("access_denied",) and exc.details.get("store_code") != "ACCESS_DENIED":
                    raise
                logger.warning("no bulk access, reading pages instead", extra={"shop": self._shop})
            else:
                url = self.wait_for_bulk(operation)
                if url is not None:
                    yield from self._stocked(self._read_bulk(url, report))
                return
        yield from self._stocked(self._pages(since, report))

    def start_bulk_catalog(self) -> str:
        """Start the bulk export of the catalog; returns the BulkOperation GID."""
        payload = self.client.mutate(
            queries.BULK_RUN_QUERY, {"query": queries.BULK_CATALOG}, "bulkOperationRunQuery"
        )
        operation = payload.get("bulkOperation")
        if not isinstance(operation, dict) or not isinstance(operation.get("id"), str):
            raise PermanentError("bulkOperationRunQuery returned no operation", code="graphql_no_data")
        logger.info("bulk catalog export started", extra={"shop": self._shop, "operation": operation["id"]})
        return str(operation["id"])

    def bulk_status(self, operation_id: str) -> BulkStatus:
        node = self.client.execute(queries.BULK_STATUS, {"id": operation_id}).get("node")
        if not isinstance(node, dict) or not node.get("status"):
            raise PermanentError(f"bulk operation {operation_id} not found", code="not_found")
        count = node.get("objectCount")
        return BulkStatus(
            id=operation_id,
            status=str(node["status"]),
            error_code=node.get("errorCode"),
            object_count=int(count) if isinstance(count, int | str) and str(count).isdigit() else 0,
            url=node.get("url"),
            partial_data_url=node.get("partialDataUrl"),
        )

    def wait_for_bulk(self, operation_id: str, timeout: float = const.BULK_TIMEOUT_SECONDS) -> str | None:
        """Poll until the operation ends; its result URL (None for an empty result).

        Between polls it waits on `bulk_signal` when set, so the `bulk_operations/finish` webhook ends the
        wait at once; the polls (1 s doubling to 15 s) are the fallback when a delivery is late or lost."""
        delay = const.BULK_POLL_INITIAL
        waited = 0.0
        while True:
            status = self.bulk_status(operation_id)
            if status.status == "COMPLETED":
                return status.url
            if status.done:
                error = (
                    f"bulk operation {operation_id} ended {status.status} ({status.error_code or 'no code'})"
                )
                if status.error_code == "ACCESS_DENIED":
                    raise PermanentError(error, code="bulk_access_denied")
                raise RetryableError(error, code="bulk_failed")
            if waited >= timeout:
                raise RetryableError(
                    f"bulk operation {operation_id} still {status.status}", code="bulk_timeout"
                )
            waited += delay  # at most: a signal ends the wait sooner
            if self.bulk_signal is None:
                self.sleep(delay)
            elif self.bulk_signal(operation_id, delay):
                logger.info(
                    "bulk operation end announced", extra={"shop": self._shop, "operation": operation_id}
                )
                continue  # poll now, keeping the delay: the word may precede the status by a moment
            delay = min(delay * 2, const.BULK_POLL_MAX)

    def read_bulk_catalog(self, url: str) -> Iterator[Product]:
        """Stream the products of a finished bulk export from its JSONL result URL."""
        self._report = CatalogReport()
        return self._stocked(self._read_bulk(url, self._report))

    def _read_bulk(self, url: str, report: CatalogReport) -> Generator[Product, None, None]:
        assembler = mapper.BulkAssembler(self.currency())
        position = 0
        for position, line in enumerate(self.client.stream_lines(url), start=1):
            yield from assembler.add_line(position, line)
        yield from assembler.finish()
        for where, reason in assembler.errors:
            report.errors.append((where, reason))
        report.skipped += assembler.skipped
        report.skipped_refs |= assembler.skipped_refs
        logger.info(
            "bulk catalog read",
            extra={
                "shop": self._shop,
                "lines": position,
                "parts": assembler.products,
                "skipped": report.skipped,
                "ignored": dict(sorted(assembler.ignored.items())),
            },
        )

    def _pages(self, since: datetime | None, report: CatalogReport) -> Generator[Product, None, None]:
        currency = self.currency()
        search = None
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            start = since.astimezone(UTC) - timedelta(seconds=const.INCREMENTAL_OVERLAP_SECONDS)
            search = f"updated_at:>'{start.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        after: str | None = None
        position = 0
        while True:
            variables = {"first": const.PRODUCTS_PER_PAGE, "after": after, "query": search}
            connection = self.client.execute(queries.CATALOG_PAGE, variables).get("products")
            for node in mapper.nodes(connection):
                position += 1
                if not isinstance(node, dict):
                    continue
                try:
                    page = mapper.page_product(node, currency)
                except ValueError as exc:
                    # Named with its variants: a full sync keeps an unreadable product as it is.
                    refs = [
                        node.get("id"),
                        *(v.get("id") for v in mapper.nodes(node.get("variants")) if isinstance(v, dict)),
                    ]
                    report.skip(position, str(exc))
                    report.skipped_refs.update(ref for ref in refs if isinstance(ref, str) and ref)
                    continue
                for ref, reason in page.errors:
                    report.skip(position, reason, ref or None)
                product = page.product
                if page.more_variants_after:
                    product = self._rest_of_variants(
                        product, page.more_variants_after, currency, position, report
                    )
                yield product
            after = mapper.next_cursor(connection)
            if after is None:
                return

    def _rest_of_variants(
        self, product: Product, after: str | None, currency: str, position: int, report: CatalogReport
    ) -> Product:
        variants = list(product.variants)
        while after is not None:
            found = self.client.execute(
                queries.PRODUCT_VARIANTS_PAGE, {"id": product.external_id, "after": after}
            )
            node = found.get("product")
            connection = node.get("variants") if isinstance(node, dict) else None
            more, errors = mapper.variants_of(product, connection, currency)
            variants += more
            for ref, reason in errors:
                report.skip(position, reason, ref or None)
            after = mapper.next_cursor(connection)
        return replace(product, variants=tuple(variants))

    def _stocked(self, products: Iterable[Product]) -> Generator[Product, None, None]:
        """Products with stock at the configured location (when there is one), read in batches."""
        if self._location is None:
            yield from products
            return
        batch: list[Product] = []
        size = 0
        for product in products:
            batch.append(product)
            size += len(product.variants)
            if size >= const.INVENTORY_BATCH_AT_LOCATION:
                yield from self._with_levels(batch)
                batch, size = [], 0
        if batch:
            yield from self._with_levels(batch)

    def _with_levels(self, products: list[Product]) -> list[Product]:
        refs = [v.external_id for p in products for v in p.variants]
        levels = {level.variant_external_id: level.available for level in self.get_inventory(refs)}
        return [
            replace(
                product,
                variants=tuple(
                    replace(v, quantity=levels.get(v.external_id, v.quantity)) for v in product.variants
                ),
            )
            for product in products
        ]

    # -- inventory -----------------------------------------------------------------------------------------

    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]:
        """`available` stock of the given variants (at the configured location, else summed over all), in
        the order asked; unknown variants are left out."""
        wanted = [ref for ref in dict.fromkeys(variant_refs) if mapper.gid_type(ref) == "ProductVariant"]
        found: dict[str, InventoryLevel] = {}
        location = self._location
        size = const.INVENTORY_BATCH_AT_LOCATION if location else const.INVENTORY_BATCH_ALL_LOCATIONS
        for chunk in _chunks(wanted, size):
            if location:
                data = self.client.execute(
                    queries.INVENTORY_AT_LOCATION, {"ids": list(chunk), "locationId": location}
                )
            else:
                data = self.client.execute(queries.INVENTORY_ALL_LOCATIONS, {"ids": list(chunk)})
            for node in data.get("nodes") or []:
                if not isinstance(node, dict) or not isinstance(node.get("id"), str):
                    continue
                try:
                    level = (
                        mapper.level_at_location(node, location)
                        if location
                        else mapper.summed_level(node, DEFAULT_LOCATION)
                    )
                except ValueError as exc:
                    logger.warning(
                        "unreadable inventory level", extra={"variant": node["id"], "error": str(exc)}
                    )
                    continue
                found[level.variant_external_id] = level
        return [found[ref] for ref in wanted if ref in found]

    def _current_stock(self, variant_refs: Sequence[str], location: str) -> dict[str, tuple[str, int | None]]:
        """(inventory item GID, available) of each variant at `location`."""
        found: dict[str, tuple[str, int | None]] = {}
        for chunk in _chunks(list(dict.fromkeys(variant_refs)), const.INVENTORY_BATCH_AT_LOCATION):
            data = self.client.execute(
                queries.INVENTORY_AT_LOCATION, {"ids": list(chunk), "locationId": location}
            )
            for node in data.get("nodes") or []:
                if not isinstance(node, dict):
                    continue
                item = node.get("inventoryItem")
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                level = mapper.level_at_location(node, location)
                found[str(node["id"])] = (str(item["id"]), level.available)
        return found

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None:
        """Set `available` stock with `inventorySetQuantities`, compare-and-swap against the stock read just
        before (re-read and retried when it changed in between) and an idempotency key."""
        if not levels:
            return
        by_location: dict[str, dict[str, int]] = {}
        for level in levels:
            if level.available is None:
                raise ValidationError(f"variant {level.variant_external_id}: stock to set is missing")
            location = (
                level.location_ref if mapper.gid_type(level.location_ref) == "Location" else self._location
            )
            if location is None:
                raise PermanentError(
                    "inventory writes need a location: set `location` in the shop config", code="no_location"
                )
            by_location.setdefault(location, {})[level.variant_external_id] = max(0, level.available)
        for location, wanted in by_location.items():
            for attempt in range(1, _STALE_ATTEMPTS + 1):
                try:
                    self._set_at(location, wanted)
                    break
                except RetryableError as exc:
                    if exc.code != "change_from_quantity_stale" or attempt == _STALE_ATTEMPTS:
                        raise
                    logger.info("stock changed while setting it, reading again", extra={"shop": self._shop})

    def _set_at(self, location: str, wanted: Mapping[str, int]) -> None:
        current = self._current_stock(list(wanted), location)
        missing = sorted(set(wanted) - set(current))
        if missing:
            raise PermanentError(
                f"unknown variant(s) {', '.join(missing[:5])} in {self._shop}", code="not_found"
            )
        changes = [
            (current[ref][0], location, amount, current[ref][1])
            for ref, amount in wanted.items()
            if current[ref][1] != amount
        ]
        for start in range(0, len(changes), 250):
            chunk = changes[start : start + 250]
            key = mapper.idempotency_key("inventorySetQuantities", self._shop, chunk)
            variables = {"input": mapper.set_quantities_input(chunk), "idempotencyKey": key}
            self.client.mutate(queries.INVENTORY_SET, variables, "inventorySetQuantities")

    # -- orders --------------------------------------------------------------------------------------------

    def create_order(self, order: Order, idempotency_key: str) -> ExternalOrderRef:
        """Push an order with `orderCreate`, our key in `sourceIdentifier` and a tag; an order already
        created with this key is returned instead. A failure that may have created it is raised as it came,
        without a repeat: look it up with `find_order` before retrying."""
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValidationError(
                "idempotency key must be 1 to 255 characters", details={"field": "idempotency_key"}
            )
        existing = self.find_order(idempotency_key)
        if existing is not None:
            return existing
        if order.currency != self.currency():
            raise ValidationError(
                f"order {order.id} is in {order.currency} but {self._shop} sells in {self.currency()}",
                details={"field": "currency"},
            )
        try:
            variables = mapper.order_variables(
                order,
                idempotency_key,
                inventory_behaviour=self.config["inventory_behaviour"],
                extra_tags=self.config["order_tags"],
                source_name=self.config["source_name"],
                test=self.config["test_orders"],
            )
        except ValueError as exc:
            raise ValidationError(f"order {order.id}: {exc}") from None
        payload = self.client.mutate(queries.ORDER_CREATE, variables, "orderCreate", repeatable=False)
        try:
            ref = mapper.order_ref(payload.get("order"))
        except ValueError:
            raise PermanentError("orderCreate returned no order", code="graphql_no_data") from None
        logger.info(
            "order pushed", extra={"shop": self._shop, "order": order.id, "store_order": ref.external_id}
        )
        return ref

    def find_order(self, idempotency_key: str) -> ExternalOrderRef | None:
        """The order pushed with this key: by `source_identifier`, else by the key's tag."""
        searches = (
            (f"source_identifier:{mapper.search_literal(idempotency_key)}", None),
            (
                f"tag:{mapper.search_literal(mapper.key_tag(idempotency_key))}",
                mapper.key_tag(idempotency_key),
            ),
        )
        for search, tag in searches:
            connection = self.client.execute(queries.ORDER_FIND, {"query": search}).get("orders")
            for node in mapper.nodes(connection):
                if not isinstance(node, dict):
                    continue
                tags = node.get("tags") or []
                if node.get("sourceIdentifier") == idempotency_key or (tag is not None and tag in tags):
                    return mapper.order_ref(node)
        return None

    def cancel_order(
        self,
        ref: ExternalOrderRef,
        *,
        reason: str = "OTHER",
        restock: bool = True,
        refund: bool = True,
        notify_customer: bool = False,
        staff_note: str | None = None,
    ) -> None:
        """Cancel with `orderCancel` (an asynchronous job in the store): restock, refund to the original
        payment methods, reason one of const.CANCEL_REASONS."""
        if mapper.gid_type(ref.external_id) != "Order":
            raise ValidationError(
                f"{ref.external_id!r} is not an Order GID", details={"field": "external_id"}
            )
        if reason not in const.CANCEL_REASONS:
            raise ValidationError(
                f"cancel reason {reason!r} is not one of {', '.join(sorted(const.CANCEL_REASONS))}"
            )
        variables: dict[str, Any] = {
            "orderId": ref.external_id,
            "reason": reason,
            "restock": restock,
            "refundMethod": {"originalPaymentMethodsRefund": True} if refund else None,
            "notifyCustomer": notify_customer,
            "staffNote": staff_note,
        }
        payload = self.client.mutate(
            queries.ORDER_CANCEL, variables, "orderCancel", errors_key="orderCancelUserErrors"
        )
        job = payload.get("job")
        logger.info(
            "order cancellation requested",
            extra={
                "shop": self._shop,
                "order": ref.external_id,
                "job": job.get("id") if isinstance(job, dict) else None,
            },
        )

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

    def inventory_totals(self, inventory_item_refs: Sequence[str]) -> dict[str, int | None]:
        """`available` stock of each inventory item summed over every location (None when not tracked),
        read in batches; unknown items are left out. For merchants that sell the sum of all locations,
        whose webhooks name one location at a time."""
        wanted = [
            ref for ref in dict.fromkeys(inventory_item_refs) if mapper.gid_type(ref) == "InventoryItem"
        ]
        found: dict[str, int | None] = {}
        for chunk in _chunks(wanted, const.INVENTORY_BATCH_ALL_LOCATIONS):
            data = self.client.execute(queries.INVENTORY_ITEM_TOTALS, {"ids": list(chunk)})
            for node in data.get("nodes") or []:
                if not isinstance(node, dict) or not isinstance(node.get("id"), str):
                    continue
                try:
                    found[node["id"]] = mapper.summed_level(node, DEFAULT_LOCATION).available
                except ValueError as exc:
                    logger.warning("unreadable inventory item", extra={"item": node["id"], "error": str(exc)})
        return found
