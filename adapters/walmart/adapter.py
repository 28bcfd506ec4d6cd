"""The Walmart Marketplace (US) store adapter: one seller's catalog, stock, orders and notifications.

Config
    ``seller_id`` / ``client_id``  the store's identity (``store_ref``: the seller id, else the client id);
                            at least one is required.
    ``environment``         ``production`` (default) | ``sandbox``; ``base_url`` overrides it (an emulator).
    ``location``            a ship node id: stock is read and written at that node; absent, at the seller's
                            default node (``inventory_source=sku``) or summed over every node (``ship_nodes``).
    ``inventory_source``    ``ship_nodes`` (default): ``/v3/inventories/{sku}`` whose ``availToSellQty`` is the
                            sellable stock (what Walmart's own open orders have not taken); ``sku``:
                            ``GET/PUT /v3/inventory?sku=`` at the default node (the seller's input quantity).
    ``catalog_stock``       read each item's stock during a catalog pass (default true): from the multi-node
                            listing, 50 SKUs a call, with ``ship_nodes``; one call per SKU with ``sku``.
    ``currency``            currency of prices that name none (default ``USD``).
    ``bulk_inventory_threshold``  more levels than this are written as one bulk feed (default 50).
    ``feeds_per_hour``      bulk feeds allowed per hour (default 10); ``feed_poll_seconds`` (default 30).
    ``mcs_enrolled``        the seller is on Walmart Multichannel Solutions (default false). Without it the
                            instance has no ORDER_PUSH capability: the core takes sold units off Walmart's
                            stock instead (``get_inventory``, then ``set_inventory``).
    ``order_channel_id``    the Multichannel sales channel (``discover_channel`` finds it at connection time
                            when absent); ``order_channel_name`` picks one of several.
    ``mcs_poll_seconds``    how long ``create_order`` polls the order's status (default 10).
    ``shipping_method``     ``STANDARD`` (default) | ``EXPEDITED`` | ``RUSH``.
    ``seller_order_prefix`` letters before the digest in ``sellerOrderId`` (default ``SL``).
    ``webhook_auth``        ``HMAC`` (default; keyed with the client secret) | ``BASIC_AUTH``;
                            ``webhook_auth_header`` is the header Walmart puts it in (default ``Authorization``).
    ``send_basic_auth``     also send Basic client credentials on resource calls (default false).
    ``service_name``        ``WM_SVC.NAME`` (default ``Walmart Marketplace``); ``max_pacing_seconds`` (60).
Credentials
    ``client_id`` and ``client_secret``; ``webhook_username`` and ``webhook_password`` for BASIC_AUTH
    deliveries.

Capabilities. ``WalmartAdapter.capabilities`` (on the class) is what the store kind can do; on an instance
it is what this seller can do: ORDER_PUSH only with ``mcs_enrolled``. The class attribute is a descriptor so
code that only has the class (the webhook receiver) and code that has an instance both read a frozenset.
Walmart has no "changed since" filter on items, so there is no incremental catalog: ``iter_catalog`` reads
everything whatever ``since`` is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import requests

from adapters.walmart import const, mapper, webhook
from adapters.walmart.client import WalmartClient, path_segment
from adapters.walmart.connect import WalmartConnectFlow
from adapters.walmart.jobs import PERIODIC_JOBS, StoreStockJobs
from adapters.walmart.mapper import FeedStatus, McsStatus, WalmartOrder, WalmartOrderLine
from connector.domain.catalog import InventoryLevel, Product
from connector.domain.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RetryableError,
    StorelinkError,
    ValidationError,
    unreadable_input,
)
from connector.domain.events import StoreEvent
from connector.domain.orders import ExternalOrderRef, Order
from connector.domain.ports import (
    Capability,
    CatalogReport,
    HttpOptions,
    PeriodicJob,
    ReportsCatalogSkips,
    WebhookEnvelope,
)
from connector.infra.http import build_session

logger = logging.getLogger(__name__)

__all__ = ["FeedStatus", "McsStatus", "WalmartAdapter", "WalmartOrder", "WalmartOrderLine"]

_MAX_TEXT: Final = 200
_POLL_INITIAL: Final = 0.5
_POLL_MAX: Final = 3.0
_STOCK_BATCH: Final = 20
"""Items whose stock is read together during a catalog pass."""
PENDING_RETRY_SECONDS: Final = 30.0
"""How soon the job layer looks again at a Multichannel order Walmart has not decided on."""


class _Capabilities:
    """`capabilities`: the store kind's on the class, this seller's on an instance."""

    def __get__(self, instance: WalmartAdapter | None, owner: type) -> frozenset[Capability]:
        if instance is None:
            return const.CAPABILITIES
        return instance.instance_capabilities


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
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


def _number(config: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValidationError(f"{key} must be a number from {low:g} to {high:g}", details={"field": key})
    return float(value)


def _whole(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{key} must be a whole number from {low} to {high}", details={"field": key})
    return value


def _choice(config: Mapping[str, Any], key: str, default: str, allowed: Collection[str], upper: bool) -> str:
    value = _text(config, key) or default
    value = value.upper() if upper else value.lower()
    if value not in allowed:
        raise ValidationError(
            f"{key} {value!r} is not one of {', '.join(sorted(allowed))}", details={"field": key}
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


class WalmartAdapter(StoreStockJobs, ReportsCatalogSkips):
    """A Walmart Marketplace seller, through the Marketplace API (v3) with its own client id and secret."""

    kind: ClassVar[str] = const.KIND
    capabilities = _Capabilities()
    connect_flow: ClassVar[WalmartConnectFlow] = WalmartConnectFlow()
    periodic_jobs: ClassVar[tuple[PeriodicJob, ...]] = PERIODIC_JOBS

    def __init__(
        self,
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        http: HttpOptions,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = self.validate_config(config)
        self._credentials = {key: str(value) for key, value in credentials.items() if value is not None}
        client_id = self._credentials.get("client_id") or self.config["client_id"] or ""
        self._client_secret = self._credentials.get("client_secret") or ""
        self._location: str | None = self.config["location"]
        self._currency: str = self.config["currency"]
        self._sleep = sleep
        self._monotonic = monotonic
        self._wall = wall
        self._session = session if session is not None else build_session(http)
        self.client = WalmartClient(
            client_id,
            self._client_secret,
            http,
            self._session,
            self.config["base_url"],
            service_name=self.config["service_name"],
            send_basic_auth=self.config["send_basic_auth"],
            max_pacing_seconds=self.config["max_pacing_seconds"],
            sleep=sleep,
            monotonic=monotonic,
            wall=wall,
        )
        self.channel_id: str | None = self.config["order_channel_id"]
        self._feeds_sent: list[float] = []
        self._report = CatalogReport()
        self._stock: dict[str, int | None] | None = None

    @property
    def instance_capabilities(self) -> frozenset[Capability]:
        return self.config_capabilities(self.config)

    @classmethod
    def config_capabilities(cls, config: Mapping[str, Any]) -> frozenset[Capability]:
        """What a seller with this (normalized) config can do: ORDER_PUSH only when enrolled in MCS."""
        if config.get("mcs_enrolled"):
            return const.CAPABILITIES
        return const.CAPABILITIES - {Capability.ORDER_PUSH}

    # -- configuration -----------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized config, or raise ValidationError naming the field and the problem."""
        if not isinstance(config, Mapping):
            raise ValidationError("walmart config must be an object")
        unknown = sorted(str(key) for key in config if key not in const.CONFIG_KEYS)
        if unknown:
            raise ValidationError(
                f"unknown walmart config key(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(const.CONFIG_KEYS))}",
                details={"fields": unknown},
            )
        seller_id = _text(config, "seller_id")
        client_id = _text(config, "client_id")
        if not seller_id and not client_id:
            raise ValidationError(
                "seller_id or client_id is required: it names the Walmart seller",
                details={"field": "seller_id"},
            )
        environment = _choice(config, "environment", const.DEFAULT_ENVIRONMENT, const.BASE_URLS, upper=False)
        base_url = _base_url(_text(config, "base_url"))
        currency = (_text(config, "currency") or "USD").upper()
        if len(currency) != 3 or not currency.isalpha():
            raise ValidationError(
                f"currency {currency!r} is not an ISO 4217 code", details={"field": "currency"}
            )
        prefix = _text(config, "seller_order_prefix") or const.DEFAULT_SELLER_ORDER_PREFIX
        if not prefix.isascii() or not prefix.isalnum() or len(prefix) > 6:
            raise ValidationError(
                "seller_order_prefix must be 1 to 6 letters or digits",
                details={"field": "seller_order_prefix"},
            )
        return {
            "seller_id": seller_id,
            "client_id": client_id,
            "environment": environment,
            "base_url": base_url or const.BASE_URLS[environment],
            "location": _text(config, "location"),
            "inventory_source": _choice(
                config, "inventory_source", "ship_nodes", const.INVENTORY_SOURCES, upper=False
            ),
            "catalog_stock": _flag(config, "catalog_stock", True),
            "currency": currency,
            "bulk_inventory_threshold": _whole(
                config, "bulk_inventory_threshold", const.BULK_INVENTORY_THRESHOLD, 1, 100_000
            ),
            "feeds_per_hour": _whole(config, "feeds_per_hour", const.FEEDS_PER_HOUR, 1, 1000),
            "feed_poll_seconds": _number(config, "feed_poll_seconds", const.FEED_POLL_SECONDS, 0, 3600),
            "mcs_enrolled": _flag(config, "mcs_enrolled", False),
            "order_channel_id": _text(config, "order_channel_id"),
            "order_channel_name": _text(config, "order_channel_name"),
            "mcs_poll_seconds": _number(config, "mcs_poll_seconds", const.MCS_POLL_SECONDS, 0, 300),
            "shipping_method": _choice(
                config, "shipping_method", "STANDARD", const.SHIPPING_METHODS, upper=True
            ),
            "seller_order_prefix": prefix.upper(),
            "webhook_auth": _choice(config, "webhook_auth", "HMAC", const.WEBHOOK_AUTH_METHODS, upper=True),
            "webhook_auth_header": _text(config, "webhook_auth_header") or const.DEFAULT_WEBHOOK_AUTH_HEADER,
            "send_basic_auth": _flag(config, "send_basic_auth", False),
            "service_name": _text(config, "service_name") or const.SERVICE_NAME,
            "max_pacing_seconds": _number(config, "max_pacing_seconds", 60.0, 0, 3600),
        }

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        """The seller id, else the client id."""
        normalized = cls.validate_config(config)
        return str(normalized["seller_id"] or normalized["client_id"])

    # -- connection --------------------------------------------------------------------------------------

    def check_connection(self) -> None:
        """Request a token with the client id and secret (AuthError when Walmart refuses them); for a seller
        on Multichannel without a configured channel, find the channel too."""
        self.client.fetch_token()
        if self.config["mcs_enrolled"] and not self.channel_id:
            self.discover_channel()
        logger.info("walmart seller reachable", extra={"store_ref": self.store_ref(self.config)})

    def discover_channel(self) -> str:
        """The seller's Multichannel sales channel id (`channel-details`): the one named
        `order_channel_name`, else the only active one. It is kept on the instance and in `config`."""
        body = self.client.request("GET", const.MCS_CHANNELS_PATH)
        found = [entry for entry in mapper.channels(body) if entry[2]]
        wanted = self.config["order_channel_name"]
        if wanted:
            found = [entry for entry in found if entry[1] == wanted]
        if len(found) != 1:
            names = ", ".join(f"{name or '?'} ({cid})" for cid, name, _ in found) or "none"
            raise PermanentError(
                f"cannot tell the Multichannel sales channel: active channels {names}; "
                "set order_channel_id or order_channel_name",
                code="no_order_channel",
            )
        self.channel_id = found[0][0]
        self.config["order_channel_id"] = self.channel_id
        logger.info("walmart sales channel found", extra={"order_channel_id": self.channel_id})
        return self.channel_id

    # -- catalog -----------------------------------------------------------------------------------------

    def iter_catalog(self, since: datetime | None = None) -> Iterator[Product]:
        """Stream every item (`GET /v3/items` from `nextCursor=*` until the cursor is empty; a short page is
        not the end), consecutive items of one variant group as one product. `since` is not used: Walmart
        has no changed-since filter on items."""
        self._report = CatalogReport()
        return self._catalog(self._report)

    def iter_items(self) -> Generator[Mapping[str, Any], None, None]:
        """The raw items, page by page."""
        cursor: str | None = "*"
        while cursor is not None:
            page = self.client.request(
                "GET",
                const.ITEMS_PATH,
                params={"nextCursor": cursor, "limit": const.ITEMS_PAGE_LIMIT},
            )
            yield from mapper.items_of(page)
            cursor = mapper.next_cursor(page)

    def iter_stock(self) -> Iterator[InventoryLevel]:
        """Every SKU's stock from the multi-node listing (`GET /v3/inventories`, 50 a page, followed by its
        `nextCursor`): a catalog pass reads stock in a page per 50 SKUs instead of a call per SKU."""
        when = datetime.fromtimestamp(self._wall(), UTC)
        cursor: str | None = None
        while True:
            params: dict[str, object] = {"limit": const.INVENTORIES_PAGE_LIMIT}
            if cursor:
                params["nextCursor"] = cursor
            page = self.client.request("GET", const.INVENTORIES_PATH, params=params)
            elements = page.get("elements") if isinstance(page, Mapping) else None
            found = elements.get("inventories") if isinstance(elements, Mapping) else None
            for entry in found if isinstance(found, list) else []:
                sku = mapper.text(entry.get("sku")) if isinstance(entry, Mapping) else None
                if not sku:
                    continue
                try:
                    level = mapper.level_from_nodes(entry, sku, self._location, when)
                except ValueError as exc:
                    logger.warning("unreadable walmart inventory", extra={"sku": sku, "error": str(exc)})
                    continue
                if level is not None:
                    yield level
            meta = page.get("meta") if isinstance(page, Mapping) else None
            cursor = mapper.text(meta.get("nextCursor")) if isinstance(meta, Mapping) else None
            if not cursor:
                return

    def _catalog(self, report: CatalogReport) -> Generator[Product, None, None]:
        if self.config["catalog_stock"] and self.config["inventory_source"] == "ship_nodes":
            self._stock = {level.variant_external_id: level.available for level in self.iter_stock()}
        else:
            self._stock = None
        titles: dict[str, str] = {}  # a group's title, fixed by its first part, so every part hashes alike
        seen: set[str] = set()
        group: list[mapper.ItemParts] = []
        pending: list[tuple[list[mapper.ItemParts], str | None]] = []
        products = 0
        for position, item in enumerate(self.iter_items(), start=1):
            try:
                parts = mapper.parse_item(item, self._currency)
            except ValueError as exc:
                report.skip(position, str(exc), mapper.text(item.get("sku")))
                continue
            if parts.variant.external_id in seen:
                report.skip(position, f"duplicate sku {parts.variant.external_id!r}")
                continue
            seen.add(parts.variant.external_id)
            if group and (
                group[0].product_id != parts.product_id or len(group) >= const.MAX_VARIANTS_PER_PRODUCT
            ):
                pending.append((group, _group_title(titles, group)))
                group = []
            group.append(parts)
            if sum(len(g) for g, _ in pending) >= _STOCK_BATCH:
                for product in self._with_stock(pending):
                    products += 1
                    yield product
                pending = []
        if group:
            pending.append((group, _group_title(titles, group)))
        for product in self._with_stock(pending):
            products += 1
            yield product
        log = logger.warning if report.skipped else logger.info
        log(
            "walmart catalog read",
            extra={"items": len(seen), "products": products, "skipped": report.skipped},
        )

    def _with_stock(self, groups: list[tuple[list[mapper.ItemParts], str | None]]) -> list[Product]:
        built = [mapper.build_product(parts, title) for parts, title in groups]
        if not self.config["catalog_stock"] or not built:
            return built
        if self._stock is not None:  # read up front from the multi-node listing
            levels: Mapping[str, int | None] = self._stock
        else:
            levels = {
                level.variant_external_id: level.available
                for level in self.get_inventory([v.external_id for p in built for v in p.variants])
            }
        return [
            replace(
                product,
                variants=tuple(
                    replace(v, quantity=levels.get(v.external_id, v.quantity)) for v in product.variants
                ),
            )
            for product in built
        ]

    # -- inventory ---------------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The location ref of the levels this adapter reads and writes."""
        return self._location or const.DEFAULT_LOCATION

    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]:
        """Stock of each SKU, in the order asked; SKUs Walmart does not know are left out."""
        found: list[InventoryLevel] = []
        for sku in dict.fromkeys(variant_refs):
            if not sku:
                continue
            try:
                level = self._level(sku)
            except NotFoundError:
                continue
            except ValueError as exc:
                logger.warning("unreadable walmart inventory", extra={"sku": sku, "error": str(exc)})
                continue
            if level is not None:
                found.append(level)
        return found

    def _level(self, sku: str) -> InventoryLevel | None:
        when = datetime.fromtimestamp(self._wall(), UTC)
        if self.config["inventory_source"] == "ship_nodes":
            body = self.client.request(
                "GET",
                f"{const.INVENTORIES_PATH}/{path_segment(sku)}",
                params={"shipNode": self._location},
                endpoint=f"GET {const.INVENTORIES_PATH}/{{sku}}",
            )
            return mapper.level_from_nodes(body, sku, self._location, when)
        body = self.client.request(
            "GET", const.INVENTORY_PATH, params={"sku": sku, "shipNode": self._location}
        )
        return mapper.level_from_inventory(body, sku, self.location, when)

    def _node_for(self, level: InventoryLevel) -> str | None:
        if level.location_ref and level.location_ref != const.DEFAULT_LOCATION:
            if self._location is not None and level.location_ref != self._location:
                raise ValidationError(
                    f"{level.variant_external_id}: location {level.location_ref!r} is not the configured "
                    f"ship node {self._location!r}",
                    details={"field": "location_ref"},
                )
            return level.location_ref
        return self._location

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None:
        """Set stock: one PUT per SKU for a few levels, one bulk feed (or several of `FEED_MAX_ITEMS`) for
        more than `bulk_inventory_threshold`, within `feeds_per_hour`."""
        wanted: dict[tuple[str, str | None], int] = {}
        for level in levels:
            if level.available is None:
                raise ValidationError(f"{level.variant_external_id}: stock to set is missing")
            wanted[(level.variant_external_id, self._node_for(level))] = max(0, level.available)
        if not wanted:
            return
        if len(wanted) > self.config["bulk_inventory_threshold"]:
            by_node: dict[str | None, list[tuple[str, int]]] = {}
            for (sku, node), amount in wanted.items():
                by_node.setdefault(node, []).append((sku, amount))
            for node, items in by_node.items():
                for start in range(0, len(items), const.FEED_MAX_ITEMS):
                    self.send_inventory_feed(items[start : start + const.FEED_MAX_ITEMS], node)
            return
        for (sku, node), amount in wanted.items():
            self._put_level(sku, node, amount)

    def _put_level(self, sku: str, node: str | None, amount: int) -> None:
        if self.config["inventory_source"] == "ship_nodes":
            if node is None:
                raise PermanentError(
                    "inventory writes per ship node need a location: set `location` in the config",
                    code="no_location",
                )
            body = self.client.request(
                "PUT",
                f"{const.INVENTORIES_PATH}/{path_segment(sku)}",
                body=mapper.node_inventory_body(node, amount),
                endpoint=f"PUT {const.INVENTORIES_PATH}/{{sku}}",
            )
            failed = [
                (name, status) for name, status in mapper.node_results(body) if status.upper() != "SUCCESS"
            ]
            if failed:
                raise PermanentError(
                    f"Walmart did not set the stock of {sku} at {', '.join(f'{n} ({s})' for n, s in failed)}",
                    code="inventory_rejected",
                    details={"sku": sku, "nodes": failed},
                )
            return
        self.client.request(
            "PUT",
            const.INVENTORY_PATH,
            params={"sku": sku, "shipNode": node},
            body=mapper.inventory_body(sku, amount),
        )

    def send_inventory_feed(
        self, items: Sequence[tuple[str, int]], ship_node: str | None = None
    ) -> FeedStatus:
        """Send one bulk inventory feed and poll its status for up to `feed_poll_seconds`; PermanentError when
        items failed, RetryableError when this hour's feed allowance is used up."""
        now = self._wall()
        self._feeds_sent = [sent for sent in self._feeds_sent if now - sent < 3600]
        if len(self._feeds_sent) >= self.config["feeds_per_hour"]:
            wait = 3600 - (now - self._feeds_sent[0])
            raise RetryableError(
                f"{self.config['feeds_per_hour']} inventory feeds sent in the last hour",
                retry_after=max(1.0, wait),
                code="feed_allowance",
            )
        feed_type = (
            "inventory" if ship_node is None or self.config["inventory_source"] == "sku" else "MP_INVENTORY"
        )
        node_for_feed = ship_node if feed_type == "MP_INVENTORY" else None
        body = self.client.request(
            "POST",
            const.FEEDS_PATH,
            params={"feedType": feed_type, "shipNode": ship_node if feed_type == "inventory" else None},
            body=mapper.inventory_feed(items, node_for_feed),
            endpoint=f"POST {const.FEEDS_PATH}?feedType={feed_type}",
            repeatable=False,
        )
        self._feeds_sent.append(now)
        feed_id = mapper.text(body.get("feedId")) if isinstance(body, Mapping) else None
        if not feed_id:
            raise PermanentError("Walmart accepted the inventory feed without a feedId", code="bad_response")
        logger.info("walmart inventory feed sent", extra={"feed_id": feed_id, "items": len(items)})
        status = FeedStatus(feed_id, "RECEIVED")
        deadline = self._monotonic() + self.config["feed_poll_seconds"]
        delay = _POLL_INITIAL
        while self._monotonic() < deadline:
            self._sleep(min(delay, max(0.0, deadline - self._monotonic())))
            delay = min(delay * 2, 15.0)
            status = self.feed_status(feed_id)
            if status.done:
                break
        if status.done and (status.failed or status.status == "ERROR"):
            raise PermanentError(
                f"inventory feed {feed_id}: {status.failed} of {status.received} items failed"
                + (f", first {status.failures[0][0]}: {status.failures[0][1]}" if status.failures else ""),
                code="feed_items_failed",
                details={"feed_id": feed_id, "failures": list(status.failures)},
            )
        if not status.done:
            logger.info("walmart inventory feed still processing", extra={"feed_id": feed_id})
        return status

    def feed_status(self, feed_id: str) -> FeedStatus:
        body = self.client.request(
            "GET",
            f"{const.FEEDS_PATH}/{path_segment(feed_id)}",
            params={"includeDetails": "true", "limit": 50},
            endpoint=f"GET {const.FEEDS_PATH}/{{feedId}}",
        )
        try:
            return mapper.feed_status(feed_id, body)
        except ValueError as exc:
            raise PermanentError(f"feed {feed_id}: {exc}", code="bad_response") from None

    # -- Walmart-originated orders -----------------------------------------------------------------------

    def iter_orders(
        self,
        created_since: datetime,
        created_until: datetime | None = None,
        *,
        ship_node_type: str | None = None,
    ) -> Iterator[WalmartOrder]:
        """Orders placed on Walmart from `created_since` (at most 180 days back) until `created_until` (open
        when None), in windows of `ORDERS_WINDOW_DAYS`, each followed through its `nextCursor` (a whole
        query string). Window bounds are whole seconds and inclusive, so an order placed on a bound can come
        twice: callers apply an order once per `purchase_order_id`."""
        if ship_node_type is not None and ship_node_type not in const.SHIP_NODE_TYPES:
            raise ValidationError(f"ship_node_type must be one of {', '.join(sorted(const.SHIP_NODE_TYPES))}")
        now = datetime.fromtimestamp(self._wall(), UTC)
        start = created_since if created_since.tzinfo else created_since.replace(tzinfo=UTC)
        start = max(start, now - timedelta(days=const.ORDERS_MAX_AGE_DAYS))
        end = None
        if created_until is not None:
            end = created_until if created_until.tzinfo else created_until.replace(tzinfo=UTC)
        return self._orders(start, end, ship_node_type)

    def _orders(
        self, start: datetime, end: datetime | None, ship_node_type: str | None
    ) -> Iterator[WalmartOrder]:
        """Windows of `ORDERS_WINDOW_DAYS`; without `end` the last window is open (orders placed while it
        is read are not lost to a clock difference)."""
        window = timedelta(days=const.ORDERS_WINDOW_DAYS)
        while True:
            limit = end if end is not None else datetime.fromtimestamp(self._wall(), UTC)
            if start >= limit:
                return
            stop = start + window
            last = stop >= limit
            if not last:
                window_end: str | None = _walmart_time(stop)
            else:
                window_end = _walmart_time(end) if end is not None else None
            params: dict[str, object] = {
                "createdStartDate": _walmart_time(start),
                "createdEndDate": window_end,
                "limit": const.ORDERS_PAGE_LIMIT,
                "shipNodeType": ship_node_type,
            }
            query: str | None = None
            while True:
                try:
                    page = self.client.request(
                        "GET", const.ORDERS_PATH, params=None if query else params, query=query
                    )
                except NotFoundError:  # "no orders match" comes as 404
                    break
                for raw in mapper.orders_of(page):
                    try:
                        yield mapper.parse_order(raw)
                    except ValueError as exc:
                        logger.warning(
                            "unreadable walmart order",
                            extra={
                                "purchase_order_id": mapper.text(raw.get("purchaseOrderId")),
                                "error": str(exc),
                            },
                        )
                query = mapper.next_cursor(page)
                if query is None:
                    break
            if last:
                return
            start = stop

    # -- Multichannel orders -----------------------------------------------------------------------------

    def _require_mcs(self) -> None:
        if not self.config["mcs_enrolled"]:
            raise PermanentError(
                "this Walmart seller is not on Multichannel Solutions: orders cannot be pushed "
                "(units sold elsewhere are taken off its stock instead)",
                code="unsupported",
            )

    def seller_order_id(self, idempotency_key: str) -> str:
        """The deterministic `sellerOrderId` of an idempotency key."""
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValidationError(
                "idempotency key must be 1 to 255 characters", details={"field": "idempotency_key"}
            )
        return mapper.seller_order_id(idempotency_key, self.config["seller_order_prefix"])

    def order_status(self, seller_order: str) -> McsStatus | None:
        """A Multichannel order's status by `sellerOrderId`; None when Walmart has no such order."""
        try:
            body = self.client.request("GET", const.MCS_STATUS_PATH, params={"orderNumber": seller_order})
        except NotFoundError:
            return None
        except (ValidationError, PermanentError) as exc:
            if any("NOT_FOUND" in str(code).upper() for code in _codes(exc)):
                return None
            raise
        return mapper.mcs_status(body, seller_order)

    def _outcome(self, status: McsStatus) -> ExternalOrderRef:
        """The ref of an order Walmart took; PermanentError when it refused it, RetryableError while undecided."""
        if status.rejected or status.cancelled:
            raise PermanentError(
                f"Walmart {'cancelled' if status.cancelled else 'rejected'} Multichannel order "
                f"{status.seller_order_id} ({status.status})",
                code="mcs_rejected",
                details={"seller_order_id": status.seller_order_id, "status": status.status},
            )
        if status.pending:
            raise RetryableError(
                f"Walmart has not decided on Multichannel order {status.seller_order_id} yet ({status.status or 'no status'})",
                retry_after=PENDING_RETRY_SECONDS,
                code="mcs_pending",
                details={"seller_order_id": status.seller_order_id, "status": status.status},
            )
        name = status.purchase_order_ids[0] if status.purchase_order_ids else None
        return ExternalOrderRef(external_id=status.seller_order_id, name=name)

    def create_order(self, order: Order, idempotency_key: str) -> ExternalOrderRef:
        """Submit a Multichannel fulfilment order with a `sellerOrderId` derived from the key, then poll its
        status for up to `mcs_poll_seconds`: the ref when Walmart took it, PermanentError when it refused
        it, RetryableError while undecided (look with `find_order` before trying again)."""
        self._require_mcs()
        seller_order = self.seller_order_id(idempotency_key)
        existing = self.order_status(seller_order)
        if existing is not None:
            return self._outcome(existing)
        channel = self.channel_id or self.discover_channel()
        try:
            payload = mapper.mcs_order_payload(
                order,
                seller_order,
                channel,
                datetime.fromtimestamp(self._wall(), UTC),
                self.config["shipping_method"],
            )
        except ValueError as exc:
            raise ValidationError(f"order {order.id}: {exc}") from None
        try:
            answer = self.client.request("POST", const.MCS_ORDERS_PATH, body=payload, repeatable=False)
        except PermanentError as exc:
            if isinstance(exc, AuthError):
                raise
            # A repeat of an order that landed earlier is refused as a duplicate: the earlier one stands.
            landed = self.order_status(seller_order)
            if landed is None:
                raise
            return self._outcome(landed)
        request_id = None
        if isinstance(answer, Mapping) and isinstance(answer.get("payload"), Mapping):
            request_id = mapper.text(answer["payload"].get("requestId"))
        logger.info(
            "walmart multichannel order submitted",
            extra={"order": order.id, "seller_order_id": seller_order, "request_id": request_id},
        )
        return self._poll(seller_order)

    def _poll(self, seller_order: str) -> ExternalOrderRef:
        deadline = self._monotonic() + self.config["mcs_poll_seconds"]
        delay = _POLL_INITIAL
        status: McsStatus | None = None
        while True:
            status = self.order_status(seller_order)
            if status is not None and not status.pending:
                return self._outcome(status)
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX)
        raise RetryableError(
            f"Walmart has not decided on Multichannel order {seller_order} yet",
            retry_after=PENDING_RETRY_SECONDS,
            code="mcs_pending",
            details={"seller_order_id": seller_order, "status": status.status if status else None},
        )

    def find_order(self, idempotency_key: str) -> ExternalOrderRef | None:
        """The Multichannel order pushed with this key: None when Walmart has none, the ref when it took it,
        PermanentError when it refused it, RetryableError while it is undecided."""
        self._require_mcs()
        status = self.order_status(self.seller_order_id(idempotency_key))
        return None if status is None else self._outcome(status)

    def cancel_order(self, ref: ExternalOrderRef) -> None:
        """Cancel every line of a Multichannel order (only lines not shipped yet can be)."""
        self._require_mcs()
        status = self.order_status(ref.external_id)
        if status is None:
            raise NotFoundError(f"Walmart has no Multichannel order {ref.external_id}", code="not_found")
        if status.cancelled:
            return
        if not status.lines:
            raise PermanentError(
                f"Walmart's status of {ref.external_id} names no lines to cancel", code="no_lines"
            )
        self.client.request(
            "POST",
            const.MCS_CANCEL_PATH,
            body=mapper.mcs_cancel_payload(ref.external_id, status.lines),
        )
        logger.info(
            "walmart multichannel order cancellation sent", extra={"seller_order_id": ref.external_id}
        )

    # -- notifications -----------------------------------------------------------------------------------

    def _auth_details(self) -> dict[str, str]:
        header = self.config["webhook_auth_header"]
        if self.config["webhook_auth"] == "BASIC_AUTH":
            username = self._credentials.get("webhook_username")
            password = self._credentials.get("webhook_password")
            if not username or not password:
                raise ValidationError(
                    "BASIC_AUTH webhooks need webhook_username and webhook_password credentials",
                    details={"field": "webhook_username"},
                )
            return {
                "authMethod": "BASIC_AUTH",
                "userName": username,
                "password": password,
                "authHeaderName": header,
            }
        return {"authMethod": "HMAC", "authHeaderName": header}

    def register_webhooks(self, callback_url: str) -> list[str]:
        """Subscribe `callback_url` to every event type Storelink takes: existing subscriptions to the same
        address are kept, others of those types are pointed at it and made ACTIVE, missing ones created."""
        wanted = list(const.WEBHOOK_EVENTS)
        if self.config["mcs_enrolled"]:
            wanted += list(const.MCS_WEBHOOK_EVENTS)
        auth = self._auth_details()
        existing = webhook.subscriptions_of(self.client.request("GET", const.WEBHOOK_SUBSCRIPTIONS_PATH))
        create: list[dict[str, Any]] = []
        for event_type, resource in wanted:
            mine = [entry for entry in existing if entry.get("eventType") == event_type]
            if any(
                entry.get("eventUrl") == callback_url and str(entry.get("status", "")).upper() == "ACTIVE"
                for entry in mine
            ):
                continue
            target = next((entry for entry in mine if mapper.text(entry.get("subscriptionId"))), None)
            if target is not None:
                self.client.request(
                    "PATCH",
                    f"{const.WEBHOOK_SUBSCRIPTIONS_PATH}/{path_segment(str(mapper.text(target['subscriptionId'])))}",
                    body={"eventUrl": callback_url, "status": "ACTIVE", "authDetails": auth},
                    endpoint=f"PATCH {const.WEBHOOK_SUBSCRIPTIONS_PATH}/{{id}}",
                )
                continue
            create.append(webhook.subscription(event_type, resource, callback_url, auth))
        if create:
            self.client.request("POST", const.WEBHOOK_SUBSCRIPTIONS_PATH, body={"events": create})
        logger.info(
            "walmart notifications subscribed",
            extra={"subscriptions_created": len(create), "event_types": len(wanted)},
        )
        return [event_type for event_type, _ in wanted]

    @classmethod
    def webhook_store_ref(cls, headers: Mapping[str, str]) -> str | None:
        """None: Walmart deliveries come to `/webhooks/walmart/<merchant id>`."""
        return None

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """HMAC-SHA256 of the body with the client secret, or basic credentials, per `webhook_auth`."""
        header = self.config["webhook_auth_header"]
        if self.config["webhook_auth"] == "BASIC_AUTH":
            return webhook.verify_basic(
                self._credentials.get("webhook_username"),
                self._credentials.get("webhook_password"),
                header,
                headers,
            )
        return webhook.verify_hmac(self._client_secret, header, headers, raw_body)

    def webhook_envelope(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEnvelope:
        with unreadable_input("the delivery"):
            return webhook.envelope(raw_body, self._location)

    def parse_webhook(self, topic: str, headers: Mapping[str, str], raw_body: bytes) -> list[StoreEvent]:
        with unreadable_input("the delivery"):
            return webhook.parse(topic, raw_body, self._location)


def _group_title(titles: dict[str, str], group: Sequence[mapper.ItemParts]) -> str:
    """The title of a variant group's product: the one its first part had in this pass (a single item's own)."""
    primary = next((part for part in group if part.is_primary), group[0])
    if primary.product_id == primary.variant.external_id:
        return primary.title
    return titles.setdefault(primary.product_id, primary.title)


def _walmart_time(when: datetime) -> str:
    """`when` in UTC to the second, as Walmart's order date filters take it (`2026-01-02T03:04:05Z`)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _codes(error: StorelinkError) -> list[str]:
    codes = error.details.get("codes")
    return [str(code) for code in codes] if isinstance(codes, list) else []
