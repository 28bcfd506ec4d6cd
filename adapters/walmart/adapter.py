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
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import requests

from adapters.walmart import const, mapper, webhook
from adapters.walmart.catalog import WalmartCatalog
from adapters.walmart.client import WalmartClient, path_segment
from adapters.walmart.connect import WalmartConnectFlow
from adapters.walmart.jobs import PERIODIC_JOBS, StoreStockJobs
from adapters.walmart.mapper import FeedStatus
from adapters.walmart.multichannel import WalmartMultichannel
from adapters.walmart.order_mapper import McsStatus, WalmartOrder, WalmartOrderLine
from adapters.walmart.orders import WalmartOrders
from connector.domain.errors import ValidationError, unreadable_input
from connector.domain.ports import (
    Capability,
    CatalogReport,
    HttpOptions,
    PeriodicJob,
    ReportsCatalogSkips,
    WebhookEnvelope,
)
from connector.domain.store_events import StoreEvent
from connector.infra.http import build_session

logger = logging.getLogger(__name__)

__all__ = ["FeedStatus", "McsStatus", "WalmartAdapter", "WalmartOrder", "WalmartOrderLine"]


class _Capabilities:
    """`capabilities`: the store kind's on the class, this seller's on an instance."""

    def __get__(self, instance: WalmartAdapter | None, owner: type) -> frozenset[Capability]:
        if instance is None:
            return const.CAPABILITIES
        return instance.instance_capabilities


class WalmartAdapter(WalmartCatalog, WalmartOrders, WalmartMultichannel, StoreStockJobs, ReportsCatalogSkips):
    """A Walmart Marketplace seller, through the Marketplace API (v3) with its own client id and secret: its
    parts are mixed in from `catalog` (with `inventory`), `orders`, `multichannel` and `jobs`; the
    connection and notifications are here."""

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
        self._location = self.config["location"]
        self._currency = self.config["currency"]
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
        self.channel_id = self.config["order_channel_id"]
        self._feeds_sent = []
        self._report = CatalogReport()
        self._stock = None

    @property
    def instance_capabilities(self) -> frozenset[Capability]:
        return self.config_capabilities(self.config)

    @classmethod
    def config_capabilities(cls, config: Mapping[str, Any]) -> frozenset[Capability]:
        """What a seller with this (normalized) config can do: ORDER_PUSH only when enrolled in MCS."""
        if config.get("mcs_enrolled"):
            return const.CAPABILITIES
        return const.CAPABILITIES - {Capability.ORDER_PUSH}

    # -- connection --------------------------------------------------------------------------------------

    def check_connection(self) -> None:
        """Request a token with the client id and secret (AuthError when Walmart refuses them); for a seller
        on Multichannel without a configured channel, find the channel too."""
        self.client.fetch_token()
        if self.config["mcs_enrolled"] and not self.channel_id:
            self.discover_channel()
        logger.info("walmart seller reachable", extra={"store_ref": self.store_ref(self.config)})

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
