"""The StoreAdapter port: the one surface through which the core talks to any store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from connector.domain.catalog import InventoryLevel, Product
from connector.domain.orders import ExternalOrderRef, Order
from connector.domain.store_events import StoreEvent


class Capability(StrEnum):
    """What a store kind supports; the core asks before it calls."""

    CATALOG_FULL = "catalog_full"
    CATALOG_INCREMENTAL = "catalog_incremental"
    BULK_EXPORT = "bulk_export"
    INVENTORY_READ = "inventory_read"
    INVENTORY_WRITE = "inventory_write"
    ORDER_PUSH = "order_push"
    WEBHOOKS = "webhooks"
    POLLING = "polling"


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Transport settings handed to an adapter by the composition root (adapters read no globals)."""

    timeout: float = 30.0
    user_agent: str = "Storelink/0.1"
    allow_files: bool = False
    """Feeds may be local files (file:// URLs or paths)."""
    allow_private: bool = False
    """Feed fetches may reach private, loopback and link-local addresses (else public addresses only)."""


@dataclass(frozen=True, slots=True)
class WebhookEnvelope:
    """What the receiver needs from a verified delivery to store it once: its id, topic and store time."""

    delivery_id: str
    """The store's id of this delivery (e.g. Shopify `X-Shopify-Webhook-Id`, Walmart `eventId`): the dedupe
    key."""
    topic: str
    triggered_at: datetime | None = None
    """When the store says the change happened: orders processing and guards against stale deliveries."""


MAX_RECORDED_SKIPS = 1000
"""Skipped records a catalog pass names one by one (the rest are only counted)."""


@dataclass(slots=True)
class CatalogReport:
    """What one catalog pass of an adapter skipped: the first `MAX_RECORDED_SKIPS` as (position, reason),
    how many in all, and the ids of those it could name: variants, and the products they belong to (a full
    sync keeps them as they are)."""

    errors: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0
    skipped_refs: set[str] = field(default_factory=set)

    def skip(self, position: int, reason: str, ref: str | None = None) -> None:
        self.skipped += 1
        if ref:
            self.skipped_refs.add(ref)
        if len(self.errors) < MAX_RECORDED_SKIPS:
            self.errors.append((position, reason))


class ReportsCatalogSkips:
    """The port's three questions about the last catalog pass, answered from `self._report` (a
    `CatalogReport` the adapter replaces at the start of every pass)."""

    _report: CatalogReport

    def iter_catalog_errors(self) -> Sequence[tuple[int, str]]:
        return list(self._report.errors)

    def catalog_skipped_refs(self) -> Collection[str]:
        return frozenset(self._report.skipped_refs)

    @property
    def skipped_count(self) -> int:
        """Records the last pass skipped, including those beyond the recorded errors."""
        return self._report.skipped


class HasConfigCapabilities(Protocol):
    """An adapter whose capabilities depend on the merchant's config (e.g. a Walmart seller outside
    Multichannel Solutions takes no orders): `config_capabilities(config)` is what a merchant with that config can do."""

    @classmethod
    def config_capabilities(cls, config: Mapping[str, Any]) -> frozenset[Capability]: ...


@runtime_checkable
class StoreAdapter(Protocol):
    """One merchant's store. Construct with `(config, credentials, http)`; all methods are synchronous.

    Methods outside the adapter's `capabilities` raise `connector.domain.errors.PermanentError`.
    """

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized merchant config, or raise connector.domain.errors.ValidationError."""
        ...

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        """The store's identity (shop domain, seller id, feed URL): unique per store kind."""
        ...

    def check_connection(self) -> None:
        """Prove the credentials and address work, or raise AuthError / PermanentError / RetryableError."""
        ...

    def iter_catalog(self, since: datetime | None = None) -> Iterator[Product]:
        """Stream the catalog (all of it when `since` is None), never holding it whole in memory."""
        ...

    def iter_catalog_errors(self) -> Sequence[tuple[int, str]]:
        """Records the last `iter_catalog` skipped, as (position, reason): the run reports them."""
        ...

    @property
    def skipped_count(self) -> int:
        """Records the last `iter_catalog` skipped, including those past the recorded errors."""
        ...

    def catalog_skipped_refs(self) -> Collection[str]:
        """Ids of records the last pass skipped but could name (variants, and their products): a full sync
        keeps them as they are."""
        ...

    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]: ...

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None: ...

    def create_order(self, order: Order, idempotency_key: str) -> ExternalOrderRef: ...

    def find_order(self, idempotency_key: str) -> ExternalOrderRef | None: ...

    def cancel_order(self, ref: ExternalOrderRef) -> None: ...

    # Inbound webhooks. `headers` always have lower-cased names; `raw_body` is the bytes as received.

    @classmethod
    def webhook_store_ref(cls, headers: Mapping[str, str]) -> str | None:
        """The `store_ref` a delivery names in its headers (e.g. Shopify's shop domain), or None when the
        receiving address names the merchant instead (`/webhooks/<kind>/<merchant id>`)."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True only for an authentic delivery (constant-time comparison); never raises on bad input."""
        ...

    def webhook_envelope(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEnvelope:
        """Delivery id, topic and store time of a verified delivery; ValidationError when malformed."""
        ...

    def parse_webhook(self, topic: str, headers: Mapping[str, str], raw_body: bytes) -> list[StoreEvent]:
        """The store events a stored delivery carries; PermanentError for a topic the adapter refuses."""
        ...


# Optional surfaces. The core asks for them with `isinstance` before it uses them.


@dataclass(frozen=True, slots=True)
class InstallApp:
    """The app a store kind is installed with (an OAuth client), from settings, handed to `Installable`."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    """Scopes to ask for; empty means the adapter's required scopes."""
    admin_base_url: str | None = None
    """Another address for the store's admin and OAuth endpoints (the sandbox emulator)."""


@runtime_checkable
class Installable(Protocol):
    """A store kind installed by an authorization-code grant: the core serves `/<kind>/install` (which
    redirects to `authorize_url` with a one-time state) and `/<kind>/callback` (which checks the state, calls
    `callback_store_ref`, then `complete_install`, registers webhooks and stores the merchant in one write).

    Failures are `connector.domain.errors` types: ValidationError for bad input (a malformed shop), AuthError for a
    refused signature, grant or scope set, RetryableError when the store cannot be reached.
    """

    @classmethod
    def authorize_url(cls, app: InstallApp, shop: str, state: str, redirect_uri: str) -> str:
        """Where to send the merchant to grant access to `shop`."""
        ...

    @classmethod
    def callback_store_ref(cls, app: InstallApp, params: Mapping[str, str]) -> str:
        """Check the callback's signature and store name (no network); return its store_ref."""
        ...

    @classmethod
    def complete_install(
        cls, app: InstallApp, params: Mapping[str, str], http: HttpOptions
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Exchange the callback's grant for credentials; return (normalized config, credentials)."""
        ...

    @classmethod
    def verify_app_webhook(cls, app: InstallApp, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True when a delivery is signed by the app itself, whichever store sent it: a store with no
        merchant here (never installed, or forgotten) still sends compliance topics that must be answered.
        Constant-time; never raises."""
        ...

    def register_webhooks(self, callback_url: str) -> list[str]:
        """Subscribe `callback_url` to the store's topics; returns the topics subscribed."""
        ...


@dataclass(frozen=True, slots=True)
class EmbedPage:
    """How a store's admin frames the merchant's console page: the origins that may frame it, the scripts the
    store requires first in the page's head (from its own address) and the meta tags they read."""

    frame_ancestors: tuple[str, ...]
    scripts: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class Embeddable(Protocol):
    """A store kind whose admin opens the merchant's console page in a frame (`/console/embedded/<kind>`),
    authenticating each request with a short-lived session token it signs with the app's secret."""

    @classmethod
    def session_token_store_ref(cls, app: InstallApp, token: str) -> str:
        """Check the token (signature with the app's secret, audience the app's client id, expiry with a
        small leeway, issuer and destination the same store) and return the store_ref it is for; AuthError
        when it does not check out. No network."""
        ...

    @classmethod
    def embed_page(cls, app: InstallApp, store_ref: str) -> EmbedPage:
        """What the framed page of `store_ref` needs."""
        ...


CredentialsRefresh = Callable[[Mapping[str, str]], Mapping[str, str] | None]
"""Given the credentials as stored now, the entries to store after a refresh, or None when the stored ones
are fresh already (another process refreshed them)."""

CredentialsGuard = Callable[[CredentialsRefresh], Mapping[str, str]]
"""Set by the composition root: runs a `CredentialsRefresh` under a lock of the merchant's, on credentials
read again under that lock, stores the result in one write and returns the credentials now current."""


@runtime_checkable
class RefreshesCredentials(Protocol):
    """An adapter whose credentials expire and that rotates them through `refresh_guard` when it is set."""

    refresh_guard: CredentialsGuard | None


class RateLedger(Protocol):
    """A store's request budget shared by every process that talks to the same store (a cost or token
    bucket kept where all workers see it), so that together they spend the refill without overdrawing it."""

    def take(self, cost: float) -> float | None:
        """Reserve `cost` points; seconds to wait before sending (0 when they are there), or None while the
        ledger has not yet learned the store's bucket and this request is the one sent to learn it (the caller
        paces on its own; other callers wait for that request's answer)."""
        ...

    def report(
        self, refund: float, maximum: float, restore_rate: float, available: float, *, reserved: float
    ) -> None:
        """What the store said after a request that reserved `reserved` points (0 when `take` answered None):
        points to give back (reserved but not charged) and its bucket as reported. The request's reservation
        is no longer in flight; the ledger never counts more points than the store reported less the
        reservations still in flight (taken, not yet reported: the store may not have charged them yet)."""
        ...


@runtime_checkable
class SharesRateLimit(Protocol):
    """An adapter whose store limits requests per app and store: while `rate_ledger` is set, its requests
    are paced through that shared ledger rather than each process's own estimate."""

    rate_ledger: RateLedger | None


BulkSignal = Callable[[str, float], bool]
"""Waits up to `timeout` seconds for the store's word (a webhook) that bulk operation `operation_id` ended;
True when it came, False when the time ran out."""


@runtime_checkable
class AwaitsBulkSignal(Protocol):
    """An adapter whose bulk exports the store announces when they end: while `bulk_signal` is set, it waits
    between status polls through it, so a finished export is read at once rather than at the next poll."""

    bulk_signal: BulkSignal | None


@runtime_checkable
class InventoryTotals(Protocol):
    """Optional adapter surface: stock of inventory items summed over every location of the store.

    For stores whose stock webhooks name one location at a time while a merchant sells the sum of all
    locations: the inbound drain asks once per batch for the items that changed (never at parse time).
    """

    def inventory_totals(self, inventory_item_refs: Sequence[str]) -> dict[str, int | None]:
        """Summed `available` stock per inventory item ref (None when not tracked); unknown refs left out."""
        ...


# Store-specific flows behind optional surfaces: the core runs the generic part (writes, jobs, queues) and
# asks the adapter for the store's logic through these.


@dataclass(frozen=True, slots=True)
class ConnectOption:
    """A command-line option of `storelink merchants add KIND` that a connect flow declares.

    `dest` is the connect schema's field it fills; `flag` the click spelling (`--client-id`, or
    `--mcs/--no-mcs` for a flag pair, which leaves the field unset when neither is given)."""

    dest: str
    flag: str
    help: str
    envvar: str | None = None
    secret: bool = False
    """Hidden when prompted for; never echoed."""
    prompt: str | None = None
    """Asked for on the terminal when neither given nor in `envvar` (a required field)."""
    required: bool = False
    """The flow cannot run without it: a usage error naming the option when it is missing."""


class ConnectFields(BaseModel):
    """The fields every store's connect schema has; a `ConnectFlow.connect_schema` adds the store's own."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Merchant name, unique.")
    inventory_buffer: int = Field(default=0, ge=0, le=1_000_000)


@dataclass(frozen=True, slots=True)
class StoreSetting:
    """A server setting a store kind needs, read from the environment variable `env` (documented in the
    README's settings table like every other)."""

    name: str
    env: str
    description: str


@dataclass(frozen=True, slots=True)
class ConnectPlan:
    """What a connect flow settled before anything is written: the merchant's config and credentials, the
    store-specific facts reported back to the caller (`details`), and warnings for the caller."""

    config: dict[str, Any]
    credentials: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    """Lines the CLI prints after the merchant is added (a fact per line)."""
    warnings: list[str] = field(default_factory=list)


AdapterFactory = Callable[[Mapping[str, Any], Mapping[str, str]], StoreAdapter]
"""Given (config, credentials), the store's adapter, built by the core with its transport settings."""


@runtime_checkable
class ConnectFlow(Protocol):
    """A store kind connected with keys the caller hands over (not by an install redirect).

    `connect` checks the keys with the store (AuthError when it refuses them), finds what the store says
    about the seller and validates the adapter's own connect settings, all before anything is written; the
    core then stores the merchant, points the store's notifications at Storelink and queues the first sync.
    """

    store_name: str
    """The store as users read it in messages (its brand name)."""
    connect_schema: type[ConnectFields]
    """The store's connect fields (`POST /v1/merchants` with `kind`)."""
    connect_options: tuple[ConnectOption, ...]
    settings: tuple[StoreSetting, ...]

    def connect(
        self,
        fields: Mapping[str, Any],
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        settings: Mapping[str, str],
        adapter_for: AdapterFactory,
    ) -> ConnectPlan:
        """`fields`: the connect schema's values (secrets as plain text); `config` / `credentials`: extra
        adapter settings and credentials given as such; `settings`: the declared `settings` by name."""
        ...

    def connected_warnings(
        self, config: Mapping[str, Any], attempt_timeout: float, http_timeout: float
    ) -> list[str]:
        """Warnings about the stored config once the merchant exists (limits the core imposes)."""
        ...

    def unsubscribed_warning(self, reason: str | None) -> str:
        """The warning when the store's notifications were not subscribed: for want of PUBLIC_URL (None), or
        for `reason`."""
        ...


@runtime_checkable
class RegistersWebhooks(Protocol):
    """An adapter that points its store's notifications at a callback URL."""

    def register_webhooks(self, callback_url: str) -> list[str]:
        """Subscribe `callback_url` to the store's topics; returns the topics subscribed."""
        ...


@runtime_checkable
class ChecksWebhooks(Protocol):
    """An adapter that can tell which of its store's notifications no longer reach a callback URL (a
    subscription deleted in the store, or never made)."""

    def missing_webhooks(self, callback_url: str) -> list[str]:
        """The topics `register_webhooks(callback_url)` subscribes that the store does not send there now."""
        ...


@runtime_checkable
class HasConnectFlow(Protocol):
    """An adapter class that declares how its sellers are connected with keys."""

    connect_flow: ClassVar[ConnectFlow]


@runtime_checkable
class StoreOrder(Protocol):
    """An order placed in the store itself, whose units come off the platform's stock."""

    @property
    def order_ref(self) -> str: ...

    @property
    def ordered_at(self) -> datetime | None: ...

    def sku_quantities(self) -> dict[str, int]: ...


@runtime_checkable
class ListsStoreOrders(Protocol):
    """An adapter that lists the orders placed in its store, so that the core takes them off the platform's
    stock once each (`connector.stock.store_orders.poll_orders`)."""

    def list_store_orders(self, created_since: datetime) -> Iterator[StoreOrder]: ...


@runtime_checkable
class ReducesStockForSale(Protocol):
    """An adapter whose store cannot take a platform order but whose stock the core lowers per SKU instead
    (`connector.stock.store_orders.take_off_store_stock` records each step; the adapter reads and writes)."""

    def read_stock(self, sku: str) -> InventoryLevel | None: ...

    def reduce_stock_for_sale(self, sku: str, location_ref: str, target: int) -> None:
        """Set the SKU's stock at `location_ref` to `target` (the level the core computed and recorded)."""
        ...


class StoreJob(StrEnum):
    """Periodic jobs the core runs for every installed merchant of a kind that declares them."""

    STORE_ORDERS = "orders"
    """Read the store's own orders and take them off the platform's stock (`ListsStoreOrders`)."""
    STOCK_RECONCILE = "stock"
    """Read a slice of the store's stock and apply it where it is newer (notifications the store gave up
    on)."""


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    job: StoreJob
    interval_seconds: int
    batch: int = 0
    """Records per run where the job reads a slice (the stock reconcile); 0: the core's default."""


@runtime_checkable
class DeclaresPeriodicJobs(Protocol):
    """A store kind that wants some of the core's `StoreJob`s run on a schedule for its merchants."""

    periodic_jobs: ClassVar[tuple[PeriodicJob, ...]]


@runtime_checkable
class NamesWebhookTopic(Protocol):
    """An adapter whose deliveries name their topic in a header (read for logs before any merchant is
    known)."""

    @classmethod
    def webhook_topic(cls, headers: Mapping[str, str]) -> str | None: ...
