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

import base64
import binascii
import logging
import math
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connector.sandbox.walmart.deliveries import WebhookSender
from connector.sandbox.walmart.envelopes import WalmartError, gateway_error, resource_errors
from connector.sandbox.walmart.faults import ApiFault, FaultPlan
from connector.sandbox.walmart.store import EVENT_TYPES, UNIT, Store, Subscription, epoch_ms, quantity
from connector.sandbox.walmart.throttle import DEFAULT_LIMIT, Grant, RateLimit, Throttle

logger = logging.getLogger(__name__)

ACCESS_TOKEN = "WM_SEC.ACCESS_TOKEN"  # noqa: S105 (a header name)
CORRELATION_ID = "WM_QOS.CORRELATION_ID"
SERVICE_NAME = "WM_SVC.NAME"
MCS_HEADER = {"headerAttributes": {"martId": "202", "buId": "0"}}
DAY_MS = 86_400_000
SCOPES = {
    "item": "full_access",
    "inventory": "full_access",
    "orders": "full_access",
    "feeds": "full_access",
    "notifications": "full_access",
    "fulfillment": "full_access",
}


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status=status, mimetype="application/json")


def _int_arg(name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise WalmartError.bad_param(name, f"{name} must be an integer") from None
    if value < minimum:
        raise WalmartError.bad_param(name, f"{name} must be at least {minimum}")
    return value


def _body() -> Any:
    if request.mimetype in ("application/xml", "text/xml"):
        raise WalmartError.resource(415, "UNSUPPORTED_MEDIA_TYPE", "Only application/json is supported")
    raw = request.get_data(cache=True)
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise WalmartError.resource(
            400, "MALFORMED_REQUEST_CONTENT", "Request body is not valid JSON"
        ) from None


def _encode_cursor(state: dict[str, Any]) -> str:
    return base64.b64encode(orjson.dumps(state)).decode()


def _decode_cursor(raw: str, field: str) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.b64decode(raw.encode(), validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise WalmartError.bad_param(field, f"Invalid {field}") from None
    if not isinstance(state, dict) or not isinstance(state.get("p"), int):
        raise WalmartError.bad_param(field, f"Invalid {field}")
    return state


def _parse_date(raw: str, field: str) -> int:
    """`yyyy-MM-dd`, ISO date-time (Z or offset) or epoch ms -> epoch ms."""
    text = raw.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            parsed = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
    except ValueError:
        raise WalmartError.bad_param(field, f"{field} must be yyyy-MM-dd or yyyy-MM-ddTHH:mm:ssZ") from None
    return int(parsed.timestamp() * 1000)


def _iso_from_millis(ms: int) -> str:
    """Epoch milliseconds as Walmart writes a moment (UTC, milliseconds, `Z`)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler drops headers whose names contain `_`; Walmart's all do (WM_SEC.ACCESS_TOKEN)."""

    def make_environ(self) -> Any:
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ[f"HTTP_{key.upper().replace('-', '_')}"] = value.replace("\r\n", "")
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


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

    def _check_token(self) -> str:
        token = request.headers.get(ACCESS_TOKEN)
        if not token:
            raise WalmartError.gateway(
                401,
                "UNAUTHORIZED.GMP_GATEWAY_API",
                "Unauthorized",
                field="UNAUTHORIZED",
                info=f"Unauthorized token or incorrect authorization header: {ACCESS_TOKEN} is missing",
            )
        with self._tokens_lock:
            expires = self.tokens.get(token)
        if expires is None:
            raise WalmartError.gateway(
                401,
                "UNAUTHORIZED.GMP_GATEWAY_API",
                "Unauthorized",
                field="UNAUTHORIZED",
                info="Unauthorized token or incorrect authorization header.",
            )
        if self.clock() >= expires:
            raise WalmartError.gateway(
                401, "INVALID_TOKEN.GMP_GATEWAY_API", "Token is expired or invalid", field="INVALID_TOKEN"
            )
        return token

    @staticmethod
    def _check_headers() -> None:
        for name in (CORRELATION_ID, SERVICE_NAME):
            if not request.headers.get(name):
                raise WalmartError.resource(
                    400, "MISSING_REQUEST_HEADER", f"Missing required header {name}", field=name
                )

    # --- request pipeline --------------------------------------------------------------------------------

    def _fault_response(self, fault: ApiFault) -> Response | None:
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            self._drop_connection()
            return Response("", status=500)
        if fault.drop_after:
            g.drop_after = True
        if fault.status == 429:
            response = _json(
                gateway_error(
                    "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
                    "Too many requests",
                    field="REQUEST_THRESHOLD_VIOLATED",
                    category="APPLICATION",
                ),
                429,
            )
            response.headers["Retry-After"] = fault.retry_after or "2"
            return response
        if fault.status in (502, 503):
            return Response(b"", status=fault.status)
        if fault.status == 504:
            return _json(
                resource_errors(
                    "DOWNSTREAM_SYSTEM_TIME_OUT", "Downstream system timed out", category="SYSTEM"
                ),
                504,
            )
        if fault.status >= 500:
            return _json(
                gateway_error("SYSTEM_ERROR.GMP_GATEWAY_API", "Internal server error", category="SYSTEM"),
                fault.status,
            )
        if fault.status != 200:
            return _json(resource_errors("INVALID_REQUEST", "Injected error"), fault.status)
        return None

    @staticmethod
    def _drop_connection() -> None:
        sock = request.environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _before(self) -> Response | None:
        endpoint = request.endpoint
        if endpoint is None:
            return None
        g.endpoint = endpoint
        with self.store.lock:
            self.store.requests[endpoint] += 1
        self.store.process_due()
        failed = self._fault_response(self.faults.next(endpoint))
        if failed is not None:
            return failed
        grant = self.throttle.take(endpoint)
        g.grant = grant
        if not grant.allowed:
            logger.info("walmart emulator throttled", extra={"endpoint": endpoint})
            raise WalmartError(
                429,
                gateway_error(
                    "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
                    "Too many requests",
                    field="REQUEST_THRESHOLD_VIOLATED",
                    info="Request threshold violated for this API. Retry after the time in Retry-After.",
                    category="APPLICATION",
                ),
                retry_after=grant.retry_after,
            )
        if endpoint != "token":
            self._check_token()
            self._check_headers()
        if request.accept_mimetypes and not request.accept_mimetypes.accept_json:
            raise WalmartError.resource(
                406, "INVALID_ACCEPT_TYPE", "Only application/json is supported", field="Accept"
            )
        return None

    def _after(self, response: Response) -> Response:
        endpoint = g.get("endpoint")
        if endpoint is not None:
            grant: Grant = g.get("grant") or self.throttle.peek(endpoint)
            response.headers["X-Current-Token-Count"] = str(grant.remaining)
            response.headers["X-Next-Replenishment-Time"] = str(grant.next_replenishment_ms)
        correlation = request.headers.get(CORRELATION_ID)
        if correlation:
            response.headers[CORRELATION_ID] = correlation
        if g.get("drop_after"):
            self._drop_connection()
        return response

    # --- the application ---------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.before_request(self._before)
        app.after_request(self._after)

        @app.errorhandler(WalmartError)
        def walmart_error(error: WalmartError) -> Response:
            response = (
                _json(error.body, error.status)
                if error.body is not None
                else Response(b"", status=error.status)
            )
            if error.retry_after is not None:
                response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
            return response

        @app.errorhandler(HTTPException)
        def http_error(error: HTTPException) -> Response:
            if error.code == 405:
                return _json(resource_errors("METHOD_NOT_ALLOWED", "Method not allowed"), 405)
            if error.code == 404:
                return _json(resource_errors("URI_NOT_FOUND", f"No API at {request.path}", field="uri"), 404)
            return _json(
                resource_errors("INVALID_REQUEST", error.description or "Bad request"), error.code or 400
            )

        self._token_routes(app)
        self._item_routes(app)
        self._inventory_routes(app)
        self._feed_routes(app)
        self._mcs_routes(app)
        self._order_routes(app)
        self._webhook_routes(app)
        return app

    def _token_routes(self, app: Flask) -> None:
        @app.post("/v3/token", endpoint="token")
        def token() -> Response:
            if self.token_requires_headers:
                self._check_headers()
            supplied = request.authorization
            if (
                supplied is None
                or supplied.type != "basic"
                or not secrets.compare_digest((supplied.username or "").encode(), self.client_id.encode())
                or not secrets.compare_digest((supplied.password or "").encode(), self.client_secret.encode())
            ):
                raise WalmartError.gateway(
                    401,
                    "UNAUTHORIZED.GMP_GATEWAY_API",
                    "Unauthorized",
                    field="UNAUTHORIZED",
                    info="Unauthorized token or incorrect authorization header.",
                )
            grant_type = request.form.get("grant_type")
            if not grant_type:
                raise WalmartError.missing_param("grant_type")
            if grant_type != "client_credentials":
                raise WalmartError.bad_param("grant_type", f"Unsupported grant_type {grant_type}")
            issued = self.issue_token()
            logger.info("walmart emulator issued token", extra={"client_id": self.client_id})
            return _json({"access_token": issued, "token_type": "Bearer", "expires_in": self.token_ttl})

        @app.get("/v3/token/detail", endpoint="token_detail")
        def token_detail() -> Response:
            with self._tokens_lock:
                expires = self.tokens[request.headers[ACCESS_TOKEN]]
            return _json({"is_valid": True, "expire_at": str(epoch_ms(expires)), "scopes": SCOPES})

    def _item_routes(self, app: Flask) -> None:
        @app.get("/v3/items", endpoint="get_items")
        def items() -> Response:
            limit = min(_int_arg("limit", 20, minimum=1), self.items_max_limit)
            raw_cursor = request.args.get("nextCursor")
            filters = {
                "sku": request.args.get("sku") or None,
                "lifecycle_status": request.args.get("lifecycleStatus") or None,
                "published_status": request.args.get("publishedStatus") or None,
            }
            if raw_cursor in (None, "", "*"):
                position, page = _int_arg("offset", 0), 0
            else:
                state = _decode_cursor(raw_cursor, "nextCursor")
                position, page = state["p"], int(state.get("n", 0))
                remembered = state.get("f") or {}
                if not any(filters.values()) and isinstance(remembered, dict):
                    filters = {k: remembered.get(k) for k in filters}
            wanted = limit
            if (
                self.short_page_every
                and limit > 1
                and page % self.short_page_every == self.short_page_every - 1
            ):
                wanted = max(1, limit - limit // 3 - 1)
            found, following, total = self.store.items_page(position, wanted, **filters)
            document: dict[str, Any] = {"ItemResponse": found, "totalItems": total}
            if following is not None:
                document["nextCursor"] = _encode_cursor(
                    {"p": following, "n": page + 1, "f": {k: v for k, v in filters.items() if v}}
                )
            return _json(document)

        @app.get("/v3/items/<path:item_id>", endpoint="get_item")
        def item(item_id: str) -> Response:
            kind = (request.args.get("productIdType") or "SKU").upper()
            found = None
            if kind == "SKU":
                found = self.store.item(item_id)
            elif kind in ("GTIN", "UPC", "ITEM_ID", "EAN", "ISBN"):
                with self.store.lock:
                    for candidate in self.store.items.values():
                        if item_id in (candidate.gtin, candidate.upc, candidate.item_id) and item_id:
                            found = candidate
                            break
            else:
                raise WalmartError.bad_param("productIdType", f"Invalid productIdType {kind}")
            if found is None:
                raise WalmartError.not_found(f"Item {item_id} not found", field=kind.lower())
            return _json({"ItemResponse": [found.to_json()], "totalItems": 1})

    def _inventory_routes(self, app: Flask) -> None:
        def sku_arg() -> str:
            sku = request.args.get("sku")
            if not sku:
                raise WalmartError.missing_param("sku")
            return sku

        def amount_of(document: Any, field: str) -> int:
            if not isinstance(document, dict) or document.get("unit") != UNIT:
                raise WalmartError.bad_content(f"{field}.unit", f"{field}.unit must be EACH")
            amount = document.get("amount")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise WalmartError.bad_content(
                    f"{field}.amount", f"{field}.amount must be a non-negative integer"
                )
            return amount

        @app.get("/v3/inventory", endpoint="get_inventory")
        def get_inventory() -> Response:
            sku = sku_arg()
            amount = self.store.get_quantity(sku, request.args.get("shipNode") or None)
            return _json({"sku": sku, "quantity": quantity(amount)})

        @app.put("/v3/inventory", endpoint="put_inventory")
        def put_inventory() -> Response:
            sku = sku_arg()
            body = _body()
            if not isinstance(body, dict):
                raise WalmartError.bad_content("inventory", "Body must be an inventory object")
            if body.get("sku") not in (None, sku):
                raise WalmartError.bad_content("sku", "sku in the body does not match the sku parameter")
            amount = amount_of(body.get("quantity"), "quantity")
            self.store.set_quantity(sku, amount, request.args.get("shipNode") or None)
            logger.debug("walmart emulator inventory set", extra={"sku": sku, "amount": amount})
            return _json({"sku": sku, "quantity": quantity(amount)})

        @app.get("/v3/inventories", endpoint="list_inventories")
        def list_inventories() -> Response:
            limit = min(_int_arg("limit", 10, minimum=1), 50)
            raw = request.args.get("nextCursor")
            position = 0 if not raw else _decode_cursor(raw, "nextCursor")["p"]
            found, following, total = self.store.inventories_page(position, limit)
            meta: dict[str, Any] = {"totalCount": total}
            if following is not None:
                meta["nextCursor"] = _encode_cursor({"p": following, "r": secrets.token_hex(4)})
            return _json({"meta": meta, "elements": {"inventories": found}})

        @app.get("/v3/inventories/<path:sku>", endpoint="get_inventories")
        def get_inventories(sku: str) -> Response:
            return _json(self.store.node_json(sku, request.args.get("shipNode") or None))

        @app.put("/v3/inventories/<path:sku>", endpoint="put_inventories")
        def put_inventories(sku: str) -> Response:
            body = _body()
            nodes = (
                body.get("inventories", {}).get("nodes")
                if isinstance(body, dict) and isinstance(body.get("inventories"), dict)
                else None
            )
            if not isinstance(nodes, list) or not nodes:
                raise WalmartError.bad_content("inventories.nodes", "inventories.nodes is required")
            if self.store.item(sku) is None:
                raise WalmartError.not_found(f"Item with sku {sku} not found", field="sku")
            results: list[dict[str, Any]] = []
            for entry in nodes:
                node = entry.get("shipNode") if isinstance(entry, dict) else None
                try:
                    if not isinstance(node, str) or node not in self.store.ship_nodes:
                        raise WalmartError.bad_content("shipNode", f"Invalid shipNode {node}")
                    amount = amount_of(entry.get("inputQty"), "inputQty")
                    self.store.set_quantity(sku, amount, node)
                    results.append({"shipNode": node, "status": "Success"})
                except WalmartError as failure:
                    errors = (failure.body or {}).get("errors", [])
                    results.append({"shipNode": node, "status": "Failure", "errors": errors})
            return _json({"sku": sku, "nodes": results})

    def _feed_routes(self, app: Flask) -> None:
        @app.post("/v3/feeds", endpoint="post_feed")
        def post_feed() -> Response:
            feed_type = request.args.get("feedType")
            if not feed_type:
                raise WalmartError.missing_param("feedType")
            if feed_type not in ("inventory", "MP_INVENTORY"):
                raise WalmartError.bad_param("feedType", f"Unsupported feedType {feed_type}")
            if (request.content_length or 0) > self.feed_max_bytes:
                raise WalmartError.resource(
                    413, "REQUEST_ENTITY_TOO_LARGE", "Feed file exceeds the maximum size"
                )
            upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
            raw = upload.read() if upload is not None else request.get_data(cache=True)
            if len(raw) > self.feed_max_bytes:
                raise WalmartError.resource(
                    413, "REQUEST_ENTITY_TOO_LARGE", "Feed file exceeds the maximum size"
                )
            recent = self.store.feeds_in_last_hour(feed_type)
            if len(recent) >= self.feed_limit_per_hour:
                wait = recent[len(recent) - self.feed_limit_per_hour] + 3600 - self.clock()
                raise WalmartError(
                    429,
                    resource_errors(
                        "REQUEST_THRESHOLD_VIOLATED",
                        f"Feed limit of {self.feed_limit_per_hour} per hour for {feed_type} reached",
                        category="APPLICATION",
                    ),
                    retry_after=wait,
                )
            try:
                body = orjson.loads(raw or b"null")
            except orjson.JSONDecodeError:
                raise WalmartError.resource(
                    400, "MALFORMED_REQUEST_CONTENT", "Feed is not valid JSON"
                ) from None
            key = "Inventory" if feed_type == "inventory" else "inventory"
            records = body.get(key) if isinstance(body, dict) else None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise WalmartError.bad_content(key, f"{key} must be a list of inventory records")
            ship_node = request.args.get("shipNode") or None
            if ship_node is not None and ship_node not in self.store.ship_nodes:
                raise WalmartError.bad_param("shipNode", f"Invalid shipNode {ship_node}")
            feed = self.store.submit_feed(feed_type, records, ship_node)
            logger.info(
                "walmart emulator feed received", extra={"feed_id": feed.feed_id, "records": len(records)}
            )
            return _json({"feedId": feed.feed_id})

        @app.get("/v3/feeds/<path:feed_id>", endpoint="get_feed")
        def get_feed(feed_id: str) -> Response:
            feed = self.store.feed(feed_id)
            if feed is None:
                raise WalmartError.not_found(f"Feed {feed_id} not found", field="feedId")
            return _json(
                self.store.feed_json(
                    feed,
                    include_details=request.args.get("includeDetails", "false").lower() == "true",
                    offset=_int_arg("offset", 0),
                    limit=min(_int_arg("limit", 50, minimum=1), 50),
                )
            )

    def _mcs_routes(self, app: Flask) -> None:
        base = "/v3/fulfillment/orders-fulfillments"

        def mcs_body() -> dict[str, Any]:
            self.store.require_mcs()
            body = _body()
            if not isinstance(body, dict) or not isinstance(body.get("payload"), dict):
                raise WalmartError.mcs(
                    400, "ERR_EXT_DATA_0021001", "The payload structure is not valid", field="payload"
                )
            attributes = (
                body.get("header", {}).get("headerAttributes")
                if isinstance(body.get("header"), dict)
                else None
            )
            if not isinstance(attributes, dict):
                raise WalmartError.mcs(
                    400, "ERR_EXT_DATA_0021001", "header.headerAttributes is required", field="header"
                )
            for key, value in MCS_HEADER["headerAttributes"].items():
                if attributes.get(key) != value:
                    raise WalmartError.mcs(
                        400, "ERR_EXT_DATA_0021001", f"{key} must be {value}", field=f"headerAttributes.{key}"
                    )
            payload: dict[str, Any] = body["payload"]
            return payload

        def channels_answer(channels: list[dict[str, Any]]) -> Response:
            return _json(
                {
                    "status": "OK",
                    "header": MCS_HEADER,
                    "payload": {"partnerId": self.store.partner_id, "mcsDetails": channels},
                }
            )

        @app.route(f"{base}/channel-details", methods=["GET", "POST", "PUT"], endpoint="mcs_channels")
        def channels() -> Response:
            if request.method == "GET":
                self.store.require_mcs()
                with self.store.lock:
                    return channels_answer([c.to_json() for c in self.store.channels.values()])
            payload = mcs_body()
            details = payload.get("mcsDetails")
            if not isinstance(details, list) or not details or not all(isinstance(d, dict) for d in details):
                raise WalmartError.mcs(
                    400, "ERR_EXT_DATA_0021001", "mcsDetails is required", field="mcsDetails"
                )
            changed = []
            for detail in details:
                if request.method == "POST":
                    name = detail.get("orderChannelName")
                    if not isinstance(name, str) or not name:
                        raise WalmartError.mcs(
                            400,
                            "ERR_EXT_DATA_0021001",
                            "orderChannelName is required",
                            field="orderChannelName",
                        )
                    changed.append(
                        self.store.add_channel(
                            name,
                            return_address=detail.get("returnAddress") or {},
                            carrier_preference=str(detail.get("carrierPreference") or ""),
                            active=bool(detail.get("active", True)),
                        ).to_json()
                    )
                else:
                    with self.store.lock:
                        channel = self.store.channels.get(str(detail.get("orderChannelId")))
                        if channel is None:
                            raise WalmartError.mcs(
                                404, "OS_NOT_FOUND_ERROR", "orderChannelId not found", field="orderChannelId"
                            )
                        if "orderChannelName" in detail:
                            channel.order_channel_name = str(detail["orderChannelName"])
                        if "returnAddress" in detail:
                            channel.return_address = dict(detail["returnAddress"] or {})
                        if "carrierPreference" in detail:
                            channel.carrier_preference = str(detail["carrierPreference"])
                        if "active" in detail:
                            channel.active = bool(detail["active"])
                        changed.append(channel.to_json())
            return channels_answer(changed)

        @app.post(base, endpoint="mcs_create")
        def create() -> Response:
            order = self.store.create_fulfilment(mcs_body())
            return _json(
                {"status": "ACCEPTED", "header": MCS_HEADER, "payload": {"requestId": order.request_id}}
            )

        @app.get(f"{base}/status", endpoint="mcs_status")
        def status() -> Response:
            self.store.require_mcs()
            number = request.args.get("orderNumber")
            request_id = request.args.get("requestId")
            if number or request_id:
                found = self.store.fulfilment(seller_order_id=number, request_id=request_id)
                if found is None:
                    raise WalmartError.mcs(
                        404,
                        "OS_NOT_FOUND_ERROR",
                        f"Order {number or request_id} not found",
                        field="orderNumber" if number else "requestId",
                    )
                orders = [found]
            else:
                start_raw, end_raw = request.args.get("fromOrderDate"), request.args.get("toOrderDate")
                if not start_raw:
                    raise WalmartError.mcs(
                        400,
                        "INVALID_MCS_REQUEST",
                        "orderNumber or fromOrderDate is required",
                        field="orderNumber",
                    )
                start = _parse_date(start_raw, "fromOrderDate") / 1000
                end = (
                    (_parse_date(end_raw, "toOrderDate") / 1000 + 86400) if end_raw else self.clock() + 86400
                )
                limit = _int_arg("limit", 10, minimum=1)
                offset = _int_arg("offset", 0)
                if limit > 50 or offset > 50000:
                    raise WalmartError.mcs(
                        400, "INVALID_MCS_REQUEST", "limit must be 1-50, offset 0-50000", field="limit"
                    )
                orders = sorted(
                    self.store.fulfilments_between(start, end),
                    key=lambda o: (o.order_placed_time, o.seller_order_id),
                )
                if (request.args.get("sortOrder") or "DESC").upper() == "DESC":
                    orders.reverse()
                orders = orders[offset : offset + limit]
            return _json(
                {
                    "status": "OK",
                    "header": MCS_HEADER,
                    "payload": [self.store.fulfilment_json(o) for o in orders],
                }
            )

        @app.post(f"{base}/cancel", endpoint="mcs_cancel")
        def cancel() -> Response:
            payload = mcs_body()
            seller_order_id = payload.get("sellerOrderId") or payload.get("customerOrderNo")
            if not isinstance(seller_order_id, str) or not seller_order_id:
                raise WalmartError.mcs(
                    400, "INVALID_SELLER_ORDER_ID", "sellerOrderId is required", field="sellerOrderId"
                )
            items = payload.get("orderItems")
            lines: list[tuple[str, int | None]] | None = None
            if items is not None:
                if not isinstance(items, list):
                    raise WalmartError.mcs(
                        400, "ERR_EXT_DATA_0021001", "orderItems must be a list", field="orderItems"
                    )
                lines = []
                for entry in items:
                    qty = entry.get("qty") if isinstance(entry, dict) else None
                    value = qty.get("measurementValue") if isinstance(qty, dict) else None
                    line_id = entry.get("sellerLineId") if isinstance(entry, dict) else None
                    if not isinstance(line_id, str):
                        raise WalmartError.mcs(
                            400, "ERR_EXT_DATA_0021001", "sellerLineId is required", field="sellerLineId"
                        )
                    lines.append((line_id, value if isinstance(value, int) and value > 0 else None))
            self.store.cancel_fulfilment(seller_order_id, lines)
            return _json(
                {
                    "status": "ACCEPTED",
                    "header": MCS_HEADER,
                    "payload": {"requestId": str(uuid.uuid4()), "sellerOrderId": seller_order_id},
                }
            )

    def _order_routes(self, app: Flask) -> None:
        def list_orders(*, released_only: bool) -> Response:
            args = request.args
            now_ms = epoch_ms(self.clock())
            limit = min(_int_arg("limit", 100, minimum=1), 200)
            offset = _int_arg("soIndex", 0) if args.get("hasMoreElements") == "true" else 0

            def date(name: str) -> int | None:
                raw = args.get(name)
                return _parse_date(raw, name) if raw else None

            start = date("createdStartDate") or now_ms - 7 * DAY_MS
            end = date("createdEndDate") or now_ms
            ship_node_type = args.get("shipNodeType") or "SellerFulfilled"
            if ship_node_type not in ("SellerFulfilled", "WFSFulfilled", "3PLFulfilled"):
                raise WalmartError.bad_param("shipNodeType", f"Invalid shipNodeType {ship_node_type}")
            kept = ("status", "sku", "purchaseOrderId", "customerOrderId", "lastModifiedStartDate")
            filters = {key: args[key] for key in (*kept, "lastModifiedEndDate") if args.get(key)}
            found = self.store.query_orders(
                start_ms=max(start, now_ms - 180 * DAY_MS),
                end_ms=end,
                ship_node_type=ship_node_type,
                status=filters.get("status"),
                sku=filters.get("sku"),
                purchase_order_id=filters.get("purchaseOrderId"),
                customer_order_id=filters.get("customerOrderId"),
                modified_from_ms=date("lastModifiedStartDate"),
                modified_to_ms=date("lastModifiedEndDate"),
                released_only=released_only,
            )
            page = found[offset : offset + limit]
            if not page and self.orders_empty_404:
                raise WalmartError.resource(
                    404,
                    "CONTENT_NOT_FOUND.GMP_ORDER_API",
                    "No orders found for the given search criteria",
                    field="createdStartDate",
                    info="Requested content could not be found.",
                )
            cursor: str | None = None
            if offset + len(page) < len(found):
                cursor = "?" + urlencode(
                    {
                        "limit": limit,
                        "hasMoreElements": "true",
                        "soIndex": offset + len(page),
                        "poIndex": len(page),
                        "partnerId": self.store.partner_id,
                        "sellerId": self.store.partner_id,
                        "createdStartDate": _iso_from_millis(start),
                        "createdEndDate": _iso_from_millis(end),
                        "shipNodeType": ship_node_type,
                        **filters,
                    }
                )
            with self.store.lock:
                elements = [o.to_json() for o in page]
            return _json(
                {
                    "list": {
                        "meta": {"totalCount": len(found), "limit": limit, "nextCursor": cursor},
                        "elements": {"order": elements},
                    }
                }
            )

        @app.get("/v3/orders", endpoint="get_orders")
        def orders() -> Response:
            return list_orders(released_only=False)

        @app.get("/v3/orders/released", endpoint="get_released_orders")
        def released() -> Response:
            return list_orders(released_only=True)

        @app.get("/v3/orders/<purchase_order_id>", endpoint="get_order")
        def order(purchase_order_id: str) -> Response:
            with self.store.lock:
                return _json({"order": self.store.order(purchase_order_id).to_json()})

        @app.post("/v3/orders/<purchase_order_id>/acknowledge", endpoint="acknowledge_order")
        def acknowledge(purchase_order_id: str) -> Response:
            with self.store.lock:
                return _json({"order": self.store.acknowledge(purchase_order_id).to_json()})

        @app.post("/v3/orders/<purchase_order_id>/shipping", endpoint="ship_order")
        def ship(purchase_order_id: str) -> Response:
            payload = _body()
            with self.store.lock:
                return _json({"order": self.store.ship_order(purchase_order_id, payload).to_json()})

        @app.post("/v3/orders/<purchase_order_id>/cancel", endpoint="cancel_order")
        def cancel(purchase_order_id: str) -> Response:
            payload = _body()
            with self.store.lock:
                return _json({"order": self.store.cancel_order(purchase_order_id, payload).to_json()})

    def _subscription_fields(self, entry: dict[str, Any], *, partial: bool) -> dict[str, Any]:
        """Validated subscription fields of a create (all needed) or update (`partial`) body."""
        fields: dict[str, Any] = {}
        if "eventType" in entry or not partial:
            kind = entry.get("eventType")
            if kind not in EVENT_TYPES:
                raise WalmartError.bad_content("eventType", f"Unknown eventType {kind}")
            fields["event_type"] = kind
            fields["resource_name"] = entry.get("resourceName") or EVENT_TYPES[kind]
            fields["event_version"] = entry.get("eventVersion") or "V1"
        if "eventUrl" in entry or not partial:
            url = entry.get("eventUrl")
            parts = urlsplit(url) if isinstance(url, str) else None
            if (
                parts is None
                or parts.scheme not in ("http", "https")
                or parts.hostname not in self.allowed_webhook_hosts
            ):
                raise WalmartError.bad_content(
                    "eventUrl", "eventUrl must be an http(s) URL on an allowed host"
                )
            fields["event_url"] = url
        if "status" in entry or not partial:
            status = entry.get("status") or "ACTIVE"
            if status not in ("ACTIVE", "INACTIVE"):
                raise WalmartError.bad_content("status", "status must be ACTIVE or INACTIVE")
            fields["status"] = status
        if "authDetails" in entry or not partial:
            auth = entry.get("authDetails") or {}
            if not isinstance(auth, dict):
                raise WalmartError.bad_content("authDetails", "authDetails must be an object")
            if auth and str(auth.get("authMethod", "")).upper() not in ("BASIC_AUTH", "HMAC", "OAUTH"):
                raise WalmartError.bad_content(
                    "authDetails.authMethod", "authMethod must be BASIC_AUTH, HMAC or OAUTH"
                )
            fields["auth_details"] = dict(auth)
        if "headers" in entry or not partial:
            headers = entry.get("headers") or {}
            if not isinstance(headers, dict):
                raise WalmartError.bad_content("headers", "headers must be an object")
            fields["headers"] = {str(k): str(v) for k, v in headers.items()}
        return fields

    def _webhook_routes(self, app: Flask) -> None:
        @app.get("/v3/webhooks/eventTypes", endpoint="webhook_event_types")
        def event_types() -> Response:
            return _json(
                {
                    "events": [
                        {"eventType": k, "eventVersion": "V1", "resourceName": v}
                        for k, v in EVENT_TYPES.items()
                    ]
                }
            )

        @app.post("/v3/webhooks/subscriptions", endpoint="create_subscription")
        def create_subscription() -> Response:
            body = _body()
            events = body.get("events") if isinstance(body, dict) else None
            if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
                raise WalmartError.bad_content("events", "events is required")
            made = [
                Subscription(subscription_id=str(uuid.uuid4()), **self._subscription_fields(e, partial=False))
                for e in events
            ]
            with self.store.lock:
                for subscription in made:
                    self.store.subscriptions[subscription.subscription_id] = subscription
                return _json({"events": [s.to_json(self.store.partner_id) for s in made]})

        @app.get("/v3/webhooks/subscriptions", endpoint="list_subscriptions")
        def list_subscriptions() -> Response:
            with self.store.lock:
                chosen = [
                    s.to_json(self.store.partner_id)
                    for s in self.store.subscriptions.values()
                    if all(
                        request.args.get(arg) in (None, value)
                        for arg, value in (
                            ("eventType", s.event_type),
                            ("status", s.status),
                            ("subscriptionId", s.subscription_id),
                            ("resourceName", s.resource_name),
                        )
                    )
                ]
            return _json({"events": chosen})

        def subscription(subscription_id: str) -> Subscription:
            found = self.store.subscriptions.get(subscription_id)
            if found is None:
                raise WalmartError.not_found(
                    f"Subscription {subscription_id} not found", field="subscriptionId"
                )
            return found

        @app.patch("/v3/webhooks/subscriptions/<subscription_id>", endpoint="update_subscription")
        def update_subscription(subscription_id: str) -> Response:
            body = _body()
            if isinstance(body, dict) and isinstance(body.get("events"), list) and body["events"]:
                body = body["events"][0]
            if not isinstance(body, dict):
                raise WalmartError.bad_content("body", "Body must be an object")
            fields = self._subscription_fields(body, partial=True)
            with self.store.lock:
                found = subscription(subscription_id)
                for key, value in fields.items():
                    setattr(found, key, value)
                return _json(found.to_json(self.store.partner_id))

        @app.delete("/v3/webhooks/subscriptions/<subscription_id>", endpoint="delete_subscription")
        def delete_subscription(subscription_id: str) -> Response:
            with self.store.lock:
                subscription(subscription_id)
                del self.store.subscriptions[subscription_id]
            return _json({"subscriptionId": subscription_id, "message": "Subscription deleted successfully"})

        @app.post("/v3/webhooks/test", endpoint="test_webhook")
        def test_webhook() -> Response:
            body = _body()
            if not isinstance(body, dict):
                raise WalmartError.bad_content("body", "Body must be an object")
            probe = Subscription(subscription_id="test", **self._subscription_fields(body, partial=False))
            status = self.webhooks.send_test(probe)
            if status is None or not 200 <= status < 300:
                raise WalmartError.bad_content("eventUrl", f"Eventurl validation failed (status {status})")
            return _json({"message": "Eventurl successfully validated"})


class Server:
    """An emulator served on 127.0.0.1 from a background thread: `.url` is the API base URL (no /v3)."""

    def __init__(self, emulator: WalmartEmulator, port: int = 0, *, tick: float = 0.05):
        self.emulator = emulator
        self.store = emulator.store
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, emulator.app, threaded=True, request_handler=_Handler
        )
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
