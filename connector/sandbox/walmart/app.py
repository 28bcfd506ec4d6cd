"""The Walmart Marketplace US API v3 emulator's WSGI application, and `serve()`, which runs it on 127.0.0.1 in a
background thread for tests, the demo and benchmarks.

Wire contract (JSON only; every answer carries ``X-Current-Token-Count`` and ``X-Next-Replenishment-Time``
(epoch ms) of the endpoint's bucket, and echoes ``WM_QOS.CORRELATION_ID`` when the request sent one):

Authentication
  ``POST /v3/token`` (endpoint ``token``): ``Authorization: Basic base64(client_id:client_secret)``, form
  ``grant_type=client_credentials``, headers ``WM_QOS.CORRELATION_ID`` and ``WM_SVC.NAME`` ->
  ``{"access_token": "eyJ...", "token_type": "Bearer", "expires_in": 900}``. Bad credentials -> 401
  ``{"error": [{"code": "UNAUTHORIZED.GMP_GATEWAY_API", ...}]}``; missing/unsupported grant_type -> 400
  ``INVALID_REQUEST_PARAM``. ``GET /v3/token/detail`` (``token_detail``) -> ``{"is_valid", "expire_at" (ms as a
  string), "scopes": {...}}``.
  Every other call needs ``WM_SEC.ACCESS_TOKEN`` (missing or unknown -> 401 ``UNAUTHORIZED.GMP_GATEWAY_API``,
  expired -> 401 ``INVALID_TOKEN.GMP_GATEWAY_API``, both in the gateway ``{"error": [...]}`` envelope), then
  ``WM_QOS.CORRELATION_ID`` and ``WM_SVC.NAME`` (missing -> 400 ``{"errors": [{"code":
  "MISSING_REQUEST_HEADER", "field": <header>}]}``). An ``Accept`` that excludes JSON -> 406
  ``INVALID_ACCEPT_TYPE``.

Items
  ``GET /v3/items`` (``get_items``) ``?nextCursor=*&limit=20[&sku=&lifecycleStatus=&publishedStatus=]`` (or
  ``offset=``) -> ``{"ItemResponse": [item...], "totalItems": N, "nextCursor": "<base64>"}``. The cursor is
  standard base64 (it can hold ``+ / =``, so percent-encode it); ``nextCursor`` is absent on the last page only;
  a page can be shorter than ``limit`` before the end. Item: ``mart, sku, wpid, upc ("" for some), gtin,
  productName, shelf (a JSON-encoded string), productType, price{currency, amount}, publishedStatus,
  unpublishedReasons{reason[]} (unpublished only), lifecycleStatus``.
  ``GET /v3/items/{id}?productIdType=SKU|GTIN|UPC|ITEM_ID`` (``get_item``) -> ``{"ItemResponse": [item],
  "totalItems": 1}``; unknown -> 404 ``CONTENT_NOT_FOUND``.

Inventory
  ``GET /v3/inventory?sku=&shipNode=`` (``get_inventory``) -> ``{"sku", "quantity": {"unit": "EACH", "amount":
  N}}`` (the seller's input quantity at the node, default node unless named).
  ``PUT /v3/inventory?sku=&shipNode=`` (``put_inventory``) body ``{"sku", "quantity": {"unit": "EACH",
  "amount": N}}`` -> the body echoed.
  ``GET /v3/inventories/{sku}?shipNode=`` (``get_inventories``) -> ``{"sku", "nodes": [{"shipNode", "inputQty",
  "availToSellQty", "reservedQty"}]}`` (each ``{"unit": "EACH", "amount": N}``).
  ``PUT /v3/inventories/{sku}`` (``put_inventories``) body ``{"inventories": {"nodes": [{"shipNode",
  "inputQty": {...}}]}}`` -> ``{"sku", "nodes": [{"shipNode", "status": "Success"}]}``; a node that fails gets
  ``"status": "Failure"`` and ``"errors": [...]`` while the others are applied.
  ``GET /v3/inventories?limit=10&nextCursor=`` (``list_inventories``, limit <= 50) -> ``{"meta": {"totalCount",
  "nextCursor"}, "elements": {"inventories": [...]}}``; the cursor changes on every call and is absent at the end.
  SKUs are percent-decoded from the query and the path (``%2F`` included).

Feeds
  ``POST /v3/feeds?feedType=inventory[&shipNode=]`` (``post_feed``) body (JSON, or a multipart ``file``)
  ``{"InventoryHeader": {"version": "1.4"}, "Inventory": [{"sku", "quantity": {...}}]}``, or
  ``feedType=MP_INVENTORY`` with ``{"inventoryHeader": {"version": "1.5"}, "inventory": [{"sku", "shipNodes":
  [{"shipNode", "quantity"}]}]}`` -> ``{"feedId": "<HEX>@AQMBAQA"}``. More than ``feed_limit_per_hour`` feeds of
  a type in the last hour -> 429 ``REQUEST_THRESHOLD_VIOLATED`` with ``Retry-After``; a body over
  ``feed_max_bytes`` -> 413.
  ``GET /v3/feeds/{feedId}?includeDetails=true&offset=0&limit=50`` (``get_feed``, ``@`` may be sent as
  ``%40``) -> ``{"feedId", "feedStatus": RECEIVED|INPROGRESS|PROCESSED, "itemsReceived", "itemsSucceeded",
  "itemsFailed", "itemsProcessing", "offset", "limit", "itemDetails": {"itemIngestionStatus": [{"sku", "index",
  "ingestionStatus": SUCCESS|DATA_ERROR, "ingestionErrors": {"ingestionError": null|[{"type", "code", "field",
  "description"}]}}]}}``. Feeds are applied ``feed_delay`` seconds after submission.

Multichannel Solutions (MCS) (all answer 403 ``{"status": "FAIL", "errors": [{"code": "INVALID_MCS_REQUEST"}]}``
when the seller is not enrolled)
  ``GET|POST|PUT /v3/fulfillment/orders-fulfillments/channel-details`` (``mcs_channels``) -> ``{"status": "OK",
  "header": {"headerAttributes": {"martId": "202", "buId": "0"}}, "payload": {"partnerId", "mcsDetails":
  [{"orderChannelId", "orderChannelName", "returnAddress", "carrierPreference", "active"}]}}``.
  ``POST /v3/fulfillment/orders-fulfillments`` (``mcs_create``) body per research §4.4.1 -> 200 ``{"status":
  "ACCEPTED", "header": {...}, "payload": {"requestId"}}``. Invalid -> 400 ``{"status": "FAIL", "errors":
  [{"code", "field", "description", "info", "severity", "category"}]}`` (``INVALID_SELLER_ORDER_ID`` for a
  sellerOrderId that is not 1-18 alphanumerics, ``ERR_EXT_DATA_0021001`` for other fields). A sellerOrderId
  that already exists -> 400 ``INVALID_SELLER_ORDER_ID`` with ``info: "DUPLICATE_SELLER_ORDER_ID"`` (nothing
  is created). After ``mcs_delay`` seconds the order is ACCEPTED (lines PROCESSING / SUCCESSFULLY_SOURCED,
  stock reserved) or REJECTED (lines REJECTED / ITEM_NOT_FOUND or OUT_OF_STOCK).
  ``GET /v3/fulfillment/orders-fulfillments/status?orderNumber=<sellerOrderId>`` (or ``requestId=``, or
  ``fromOrderDate=YYYY-MM-DD&toOrderDate=&limit=(1-50)&offset=&sortOrder=ASC|DESC``) (``mcs_status``) ->
  ``{"status": "OK", "header": {...}, "payload": [{"sellerOrderId", "requestId", "orderChannelId",
  "orderDate", "status": RECEIVED|ACCEPTED|REJECTED|CANCELLED|SHIPPED, "orderLines": [{"sellerLineId",
  "itemDetail": {"sku"}, "orderLineQuantityInfo": [{"status", "statusDescription", "statusQuantity":
  {"unitOfMeasure", "measurementValue"}}], "shippingMethod", "shippingTier"}], "shipments": [...]}]}``; an
  unknown orderNumber/requestId -> 404 ``OS_NOT_FOUND_ERROR``.
  ``POST /v3/fulfillment/orders-fulfillments/cancel`` (``mcs_cancel``) body ``{"header", "payload":
  {"sellerOrderId", "orderItems": [{"sellerLineId", "qty": {"unitOfMeasure", "measurementValue"}}]}}``
  (no orderItems: every line) -> ``{"status": "ACCEPTED", "header", "payload": {"requestId",
  "sellerOrderId"}}``; shipped lines -> 400 ``INVALID_MCS_REQUEST``.

Orders
  ``GET /v3/orders`` (``get_orders``) ``?createdStartDate=(default now-7d)&createdEndDate=&limit=(default 100,
  max 200)&status=&sku=&purchaseOrderId=&customerOrderId=&lastModifiedStartDate=&lastModifiedEndDate=
  &shipNodeType=(default SellerFulfilled)``, or ``GET /v3/orders`` + the previous ``nextCursor`` verbatim ->
  ``{"list": {"meta": {"totalCount", "limit", "nextCursor": "?limit=..&hasMoreElements=true&soIndex=..&poIndex=..
  &partnerId=..&sellerId=..&createdStartDate=..&createdEndDate=..&shipNodeType=.." | null}, "elements": {"order":
  [...]}}}``, newest first; no match -> 404 ``CONTENT_NOT_FOUND.GMP_ORDER_API`` (``orders_empty_404``). Dates
  are ``yyyy-MM-dd``, ISO date-times or epoch ms. ``GET /v3/orders/released`` (``get_released_orders``) is the
  same for orders with a quantity still Created. Order shape per research §4.2 (lineNumber and quantity amounts
  as strings, dates in epoch ms, statuses per line with split quantities).
  ``GET /v3/orders/{purchaseOrderId}`` (``get_order``), ``POST .../acknowledge`` (``acknowledge_order``, no
  body), ``POST .../shipping`` (``ship_order``, body ``{"orderShipment": {"orderLines": {"orderLine":
  [{"lineNumber", "sellerOrderId", "orderLineStatuses": {"orderLineStatus": [{"status": "Shipped",
  "statusQuantity": {"unitOfMeasurement", "amount": "1"}, "trackingInfo": {"shipDateTime" (epoch ms),
  "carrierName": {"carrier"} | {"otherCarrier"} (+ "trackingURL"), "methodCode", "trackingNumber"}}]}}]}}}``) and
  ``POST .../cancel`` (``cancel_order``, body ``{"orderCancellation": {"orderLines": {"orderLine": [{"lineNumber",
  "orderLineStatuses": {"orderLineStatus": [{"status": "Cancelled", "cancellationReason", "statusQuantity"}]}}]}}}``)
  -> ``{"order": {...}}``; invalid -> 400 ``INVALID_REQUEST_CONTENT``.

Notifications
  ``GET /v3/webhooks/eventTypes`` (``webhook_event_types``) -> ``{"events": [{"eventType", "eventVersion",
  "resourceName"}]}``. ``POST /v3/webhooks/subscriptions`` (``create_subscription``) body ``{"events":
  [{"eventType", "eventVersion", "resourceName", "eventUrl", "status", "authDetails", "headers"}]}`` and
  ``GET /v3/webhooks/subscriptions`` (``list_subscriptions``) -> ``{"events": [{"subscriptionId", "partnerId",
  ...}]}`` (secrets not echoed); ``PATCH /v3/webhooks/subscriptions/{id}`` (``update_subscription``) -> the
  subscription object; ``DELETE`` (``delete_subscription``) -> ``{"subscriptionId", "message"}``;
  ``POST /v3/webhooks/test`` (``test_webhook``) -> ``{"message": "Eventurl successfully validated"}``.
  Event URLs must be on a loopback host. Deliveries: see the deliveries module.

Throttling: 429 ``{"error": [{"code": "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API", ...}]}`` with
``Retry-After`` (whole seconds). Unknown paths -> 404 ``URI_NOT_FOUND``; wrong method -> 405
``METHOD_NOT_ALLOWED``. Injected 500 -> ``SYSTEM_ERROR.GMP_GATEWAY_API``, 504 -> ``DOWNSTREAM_SYSTEM_TIME_OUT``,
502/503 -> no body.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from flask import Flask

from connector.sandbox import control
from connector.sandbox.serving import KeepAliveServer
from connector.sandbox.walmart import control as seller_control
from connector.sandbox.walmart.deliveries import WebhookSender
from connector.sandbox.walmart.faults import FaultPlan
from connector.sandbox.walmart.pipeline import install
from connector.sandbox.walmart.routes import feeds, inventory, items, mcs, notifications, orders, token
from connector.sandbox.walmart.store import Store
from connector.sandbox.walmart.throttle import DEFAULT_LIMIT, RateLimit, Throttle
from connector.sandbox.walmart.wire import ACCESS_TOKEN, CORRELATION_ID, SERVICE_NAME

__all__ = ["ACCESS_TOKEN", "CORRELATION_ID", "SERVICE_NAME", "Server", "WalmartEmulator", "serve"]

logger = logging.getLogger(__name__)


class WalmartEmulator:
    """One emulated seller account: its state, credentials and tokens, throttle, faults and notifications.

    Knobs: `client_id`/`client_secret` (the API keys `POST /v3/token` accepts; the secret also keys HMAC
    deliveries), `token_ttl` (seconds, `expires_in`), `token_requires_headers` (the token call needs
    WM_QOS.CORRELATION_ID and WM_SVC.NAME too), `rate_limits` ({endpoint name: RateLimit}, merged over
    throttle.DEFAULT_LIMITS) and `default_rate_limit`, `items_max_limit` (largest `limit` honoured by
    /v3/items), `short_page_every` (every Nth items page is about a third shorter than `limit`; 0 never),
    `feed_limit_per_hour` (per feed type), `feed_max_bytes`, `orders_empty_404`, `webhook_retry_delays`
    (delays of the retries after a failed delivery), `webhook_timeout`, `hmac_encoding` ("base64" or "hex"),
    `basic_prefix`, `allowed_webhook_hosts`; and for a new Store: `partner_id`, `ship_nodes` (the first is the
    default node), `feed_delay` and `mcs_delay` (seconds before feeds / MCS orders are processed),
    `mcs_enrolled`, `seed`. Runtime handles: `.store`, `.faults` (FaultPlan), `.throttle` (Throttle:
    `configure(endpoint, RateLimit)`), `.webhooks` (WebhookSender: `plan`, `set_random`, `attempts`, `flush`),
    `issue_token()`, `expire_tokens()`.
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        client_id: str = "wm-sandbox-client",
        client_secret: str = "wm-sandbox-secret",  # noqa: S107 (the sandbox credential)
        token_ttl: int = 900,
        token_requires_headers: bool = True,
        rate_limits: Mapping[str, RateLimit] | None = None,
        default_rate_limit: RateLimit = DEFAULT_LIMIT,
        items_max_limit: int = 200,
        short_page_every: int = 3,
        feed_limit_per_hour: int = 10,
        feed_max_bytes: int = 5 * 1024 * 1024,
        orders_empty_404: bool = True,
        webhook_retry_delays: Sequence[float] = (0.5, 1.0),
        webhook_timeout: float = 5.0,
        hmac_encoding: str = "base64",
        basic_prefix: bool = True,
        allowed_webhook_hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"),
        **store_options: Any,
    ):
        self.clock = clock
        self.store = store or Store(clock=clock, **store_options)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.token_requires_headers = token_requires_headers
        self.items_max_limit = items_max_limit
        self.short_page_every = short_page_every
        self.feed_limit_per_hour = feed_limit_per_hour
        self.feed_max_bytes = feed_max_bytes
        self.orders_empty_404 = orders_empty_404
        self.allowed_webhook_hosts = tuple(allowed_webhook_hosts)
        self.tokens: dict[str, float] = {}
        self._tokens_lock = threading.Lock()
        self.throttle = Throttle(rate_limits, default=default_rate_limit, clock=clock)
        self.faults = FaultPlan()
        self.webhooks = WebhookSender(
            self.store,
            client_secret=lambda: self.client_secret,
            timeout=webhook_timeout,
            retry_delays=webhook_retry_delays,
            hmac_encoding=hmac_encoding,
            basic_prefix=basic_prefix,
        )
        self.app = self._build_app()

    def close(self) -> None:
        self.webhooks.close()

    # --- tokens ------------------------------------------------------------------------------------------

    def issue_token(self, ttl: float | None = None) -> str:
        """A valid access token, as `POST /v3/token` would give."""
        token = "eyJraWQiOiJ" + secrets.token_urlsafe(48)
        with self._tokens_lock:
            self.tokens[token] = self.clock() + (self.token_ttl if ttl is None else ttl)
        return token

    def expire_tokens(self) -> None:
        with self._tokens_lock:
            for token in self.tokens:
                self.tokens[token] = self.clock() - 1

    def _build_app(self) -> Flask:
        """The WSGI app: the request pipeline and one route family per endpoint group."""
        app = Flask(__name__)
        install(app, self)
        for family in (token, items, inventory, feeds, mcs, orders, notifications):
            family.register(app, self)
        return app


class Server:
    """An emulator served on 127.0.0.1 from a background thread: `.url` is the API base URL (no /v3); its
    control endpoints answer under `/_sandbox` (`connector.sandbox.walmart.control`)."""

    def __init__(self, emulator: WalmartEmulator, port: int = 0, *, tick: float = 0.05):
        self.emulator = emulator
        self.store = emulator.store
        served = control.mount(emulator.app, seller_control.build(emulator))
        self._server: KeepAliveServer = KeepAliveServer("127.0.0.1", port, served)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="walmart-emulator", daemon=True
        )
        self._ticker = threading.Thread(
            target=self._tick, args=(tick,), name="walmart-emulator-due", daemon=True
        )
        self._thread.start()
        self._ticker.start()

    def _tick(self, every: float) -> None:
        """Feeds and MCS orders are processed when due even if nobody polls."""
        while not self._stop.wait(every):
            try:
                self.store.process_due()
            except Exception:
                logger.exception("walmart emulator background processing failed")

    def shutdown(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._ticker.join(timeout=5)
        self.emulator.close()


@contextmanager
def serve(port: int = 0, emulator: WalmartEmulator | None = None, **options: Any) -> Iterator[Server]:
    """Run an emulator (a new one built from `options` unless given) on 127.0.0.1:`port` (0 picks a free one)."""
    server = Server(emulator or WalmartEmulator(**options), port)
    try:
        yield server
    finally:
        server.shutdown()
