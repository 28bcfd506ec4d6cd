"""Conventions every `/v1` resource shares: API-key authentication, tenant scoping, request parsing, cursors.

- `authenticate()` turns `Authorization: Bearer <key>` into the calling platform client, or answers 401. A
  successful lookup is kept in-process for `KEY_CACHE_SECONDS` (keyed by the key's digest) under the key
  generation read from Redis before the lookup (`connector.merchants.clients.key_generation`); rotating, deactivating or
  removing a client increments it, so every process refuses the old key on its next request. Without Redis
  the cache is bypassed (every request looks the key up). Failures are never cached. A live purchase
  (`authenticate_deferred`) does not read the generation first: its one Lua call compares it with the cached
  one before deciding, and a request answered without that call is authenticated before its answer leaves.
- `visible_merchants(session, client)` is the one place that decides which merchants a client may see.
- `parse_body(model)` and `parse_query(model)` return validated pydantic objects or raise problems: 415 for a
  body that is not JSON, 400 for malformed JSON, 422 (`invalid_request`, with field errors) for the rest.
  `invalid_request_problem` answers a refused input (`ValidationError`) as that 422, for blueprints whose
  domain errors name one field.
- `encode_cursor`/`decode_cursor` make opaque pagination cursors; a cursor that was not issued is a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from flask import Flask, Response, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as SchemaError
from redis.exceptions import RedisError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter
from werkzeug.routing import ValidationError as RouteMismatch

from connector.api.openapi import MAX_ID
from connector.domain.errors import PermanentError, ValidationError
from connector.infra.models import Merchant
from connector.infra.runtime import Runtime
from connector.merchants import clients
from connector.stock import counters
from connector.web.problems import problem

logger = logging.getLogger(__name__)

KEY_CACHE_SECONDS = 5.0
KEY_CACHE_MAX_ENTRIES = 4096
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_CURSOR_LENGTH = 512
_KEY_CACHE = "storelink.api_key_cache"
_MAX_ID_DIGITS = len(str(MAX_ID))

ModelT = TypeVar("ModelT", bound=BaseModel)

# --- problems --------------------------------------------------------------------------------------------


class ApiError(PermanentError):
    """A request the API refuses with a given status (401, 400, 415, ...): answered as a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail, code=code)
        self.status = status
        self.title = title
        self.headers = headers or {}
        self.extra = extra


def _answer(exc: ApiError) -> Response:
    response = problem(exc.status, exc.code, exc.message, title=exc.title, **exc.extra)
    response.headers.update(exc.headers)
    return response


def invalid(message: str, errors: Sequence[tuple[str, str]]) -> ValidationError:
    """A 422 `invalid_request` problem naming each offending field."""
    return ValidationError(
        message,
        code="invalid_request",
        details={"errors": [{"field": field, "message": text} for field, text in errors]},
    )


def invalid_request_problem(exc: ValidationError) -> Response:
    """A refused input as a 422 `invalid_request` problem with field errors (a `field` detail becomes one)."""
    errors = exc.details.get("errors")
    if not isinstance(errors, list):
        field = exc.details.get("field")
        errors = [{"field": str(field) if field else "", "message": exc.message}]
    return problem(422, "invalid_request", exc.message, title="Invalid request", errors=errors)


def _schema_errors(exc: SchemaError, prefix: str = "") -> list[tuple[str, str]]:
    return [
        (prefix + ".".join(str(part) for part in error["loc"]), error["msg"])
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


# --- authentication --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiClient:
    """The platform client a request authenticated as."""

    id: int
    name: str


class HasId(Protocol):
    @property
    def id(self) -> int: ...


class KeyCache:
    """Successful key lookups, by key digest, for a few seconds and one key generation (thread-safe,
    bounded)."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, max_entries: int = KEY_CACHE_MAX_ENTRIES):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, int, ApiClient]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, generation: int = 0) -> ApiClient | None:
        """The cached client of `digest`, unless expired or looked up under another key generation."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= now or entry[1] != generation:
                del self._entries[digest]
                return None
            return entry[2]

    def peek(self, digest: str) -> tuple[int, ApiClient | None]:
        """The generation and client cached for `digest` (unexpired), to be confirmed against the current
        generation by the caller; (0, None) when there is none."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or entry[0] <= now:
            return 0, None
        return entry[1], entry[2]

    def put(self, digest: str, client: ApiClient, generation: int = 0) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for key in [key for key, (expires, _, _) in self._entries.items() if expires <= now]:
                    del self._entries[key]
                while len(self._entries) >= self.max_entries:  # still full: drop the oldest insertions
                    del self._entries[next(iter(self._entries))]
            self._entries[digest] = (now + self.ttl, generation, client)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def key_cache(app: Flask | None = None) -> KeyCache:
    """The app's key cache (made on first use)."""
    target = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cache = target.extensions.get(_KEY_CACHE)
    if not isinstance(cache, KeyCache):
        cache = target.extensions[_KEY_CACHE] = KeyCache()
    return cache


def api_runtime() -> Runtime:
    """The runtime the app was built with."""
    rt: Runtime = current_app.extensions["storelink"]
    return rt


def _unauthorized(detail: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        detail,
        title="Unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="storelink"'},
    )


def _key_generation() -> int | None:
    """The key generation in Redis, read before a lookup is made; None when Redis does not answer."""
    try:
        return clients.key_generation(api_runtime().redis)
    except RedisError:
        return None


def _lookup(digest: str, key: str, generation: int | None) -> ApiClient:
    """The key's client from the database (cached under `generation` when Redis answered), else a 401."""
    with api_runtime().db.session() as session:
        row = clients.authenticate(session, key)
        client = ApiClient(id=row.id, name=row.name) if row is not None else None
    if client is None:
        logger.info("API key refused", extra={"path": request.path})
        raise _unauthorized("the API key is not valid")
    if generation is not None:
        key_cache().put(digest, client, generation)
    return client


def _bearer_key() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if not header:
        raise _unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    if scheme.lower() != "bearer" or not key:
        raise _unauthorized("the Authorization header must be 'Bearer <key>'")
    if not clients.looks_like_key(key):
        raise _unauthorized("the API key is not valid")
    return key


def authenticate() -> ApiClient:
    """The client of this request's bearer key (looked up once per request), else a 401 problem. A client
    taken by `authenticate_deferred` is confirmed here first."""
    found = g.get("api_client")
    check: counters.KeyCheck | None = g.get("api_key_check")
    if isinstance(found, ApiClient) and (check is None or check.confirmed):
        return found
    key = _bearer_key()
    digest = clients.hash_key(key)
    generation = _key_generation()
    client = key_cache().get(digest, generation) if generation is not None else None
    if client is None:
        client = _lookup(digest, key, generation)
    g.api_client, g.api_key_check = client, None
    return client


def authenticate_deferred() -> tuple[ApiClient, counters.KeyCheck | None]:
    """`authenticate()` for a request whose one Redis call can confirm the key generation itself (a live
    purchase, `connector.stock.counters.buy_from_pins`): a client cached for the key is taken without reading
    the generation, and returned with the `KeyCheck` that call must confirm (None when the client was looked
    up now). A request that ends without confirming it is confirmed by `confirm_deferred_key` before its
    answer leaves, so a revoked key is refused as `authenticate()` refuses it."""
    found = g.get("api_client")
    if isinstance(found, ApiClient):
        return found, g.get("api_key_check")
    key = _bearer_key()
    generation, client = key_cache().peek(clients.hash_key(key))
    if client is None:
        return authenticate(), None
    check = counters.KeyCheck(clients.KEY_GENERATION, generation)
    g.api_client, g.api_key_check = client, check
    return client, check


def confirm_deferred_key(response: Response) -> Response:
    """An `after_request` hook: a request whose deferred key check was not confirmed is authenticated now, and
    answered 401 instead when the key was revoked meanwhile."""
    check: counters.KeyCheck | None = g.get("api_key_check")
    if check is not None and not check.confirmed:
        try:
            authenticate()
        except ApiError as exc:
            return _answer(exc)
    return response


def require_client() -> None:
    """A `before_request` hook for blueprints whose every route needs a key."""
    authenticate()


# --- scoping ---------------------------------------------------------------------------------------------


def visible_merchants(session: Session, client: HasId) -> Select[int]:
    """The ids of the merchants `client` may see, as a subquery for `column.in_(...)`.

    Today a merchant belongs to at most one platform client (`merchants.platform_client_id`); every scoped
    query goes through here so the rule changes in one place. `session` is taken for rules that need a lookup.
    """
    del session  # the rule is a pure SQL condition today
    return select(Merchant.id).where(Merchant.platform_client_id == client.id)


# --- request parsing -------------------------------------------------------------------------------------


def parse_body(model: type[ModelT], *, optional: bool = False, malformed_is_invalid: bool = False) -> ModelT:
    """The JSON body as `model`: 415 when it is not JSON, 400 when it does not parse, 422 when it does not fit.

    With `optional`, an empty body is `model()` (all defaults); with `malformed_is_invalid`, a body that does not
    parse is a 422 `invalid_request` too (as the webhook endpoint routes have always answered).
    """
    raw = request.get_data(cache=True)
    if optional and not raw:
        return model()
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
            title="Unsupported media type",
        )
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        if malformed_is_invalid:
            raise invalid("the request body is not valid JSON", [("", "invalid JSON")]) from None
        raise ApiError(
            400, "malformed_json", "the request body is not valid JSON", title="Malformed JSON"
        ) from None
    if not isinstance(data, dict):
        raise invalid(
            "the request body must be a JSON object", [("", f"expected an object, got {type(data).__name__}")]
        )
    try:
        return model.model_validate(data)
    except SchemaError as exc:
        raise invalid("the request body is invalid", _schema_errors(exc)) from None
    except RecursionError:
        raise invalid("the request body is nested too deeply", [("", "nested too deeply")]) from None


def parse_query(model: type[ModelT]) -> ModelT:
    """The query string as `model` (values are coerced from text); 422 with field errors when it does not fit.

    A parameter given more than once arrives as a list, which a scalar field refuses.
    """
    data = {name: values[0] if len(values) == 1 else values for name, values in request.args.lists()}
    try:
        return model.model_validate(data)
    except SchemaError as exc:
        raise invalid("the query parameters are invalid", _schema_errors(exc)) from None


def _clean_text(value: Any) -> Any:
    if isinstance(value, str) and any(ch < " " or ch == "\x7f" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def plain_text(value: str | None) -> str | None:
    """A body field validator: text without control characters (None passes)."""
    result: str | None = _clean_text(value)
    return result


class Body(BaseModel):
    """Base of request-body models: unknown members are refused and types are strict."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Base of query-parameter models: unknown parameters are ignored, text has no control characters."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _clean_text(value)


def as_utc(value: datetime | None) -> datetime | None:
    """`value` in UTC (a naive value is taken as UTC); ValueError when it cannot be expressed in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


class PageQuery(Query):
    """Cursor pagination: at most `limit` items, after the position `cursor` names."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page.")
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`next_cursor` of the previous page.",
    )


# --- cursors ---------------------------------------------------------------------------------------------


def encode_cursor(kind: str, position: Sequence[int | str]) -> str:
    """An opaque cursor for `position` in a listing of `kind` (e.g. ("products", [last_id]))."""
    text = kind + ":" + json.dumps(list(position), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *, arity: int = 1) -> tuple[int | str, ...]:
    """The position a cursor of `kind` names; a 422 problem when it is not a cursor this API issued."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        found_kind, _, payload = text.partition(":")
        if found_kind != kind:
            raise ValueError("another listing's cursor")
        position = json.loads(payload)
        if not isinstance(position, list) or len(position) != arity:
            raise ValueError("wrong shape")
        for part in position:
            if isinstance(part, bool) or not isinstance(part, int | str):
                raise ValueError("wrong type")
            if isinstance(part, int) and not 0 <= part <= MAX_ID:
                raise ValueError("out of range")
            if isinstance(part, str):
                _clean_text(part)
        return tuple(position)
    except (ValueError, binascii.Error, RecursionError):
        raise invalid("cursor is not valid", [("cursor", "not a cursor this API returned")]) from None


def decode_id_cursor(kind: str, cursor: str | None) -> int | None:
    """The id a one-id cursor names (None without a cursor)."""
    if cursor is None:
        return None
    (value,) = decode_cursor(kind, cursor)
    if not isinstance(value, int):
        raise invalid("cursor is not valid", [("cursor", "not a cursor this API returned")])
    return value


# --- responses and routing -------------------------------------------------------------------------------


def json_response(body: BaseModel, status: int = 200) -> Response:
    """`body` serialized by its model (so the response is exactly what the OpenAPI document states)."""
    return Response(body.model_dump_json(), status=status, mimetype="application/json")


class IdConverter(IntegerConverter):
    """`<id:name>`: a positive 64-bit id; anything else does not match the route (404)."""

    regex = rf"\d{{1,{_MAX_ID_DIGITS}}}"

    def __init__(self, map: Any) -> None:
        super().__init__(map, min=1, max=MAX_ID)

    def to_python(self, value: str) -> int:
        if len(value) > _MAX_ID_DIGITS:
            raise RouteMismatch()
        result: int = super().to_python(value)
        return result


def _ids_in_range(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A route's integer argument beyond the 64-bit id range names nothing: 404 before any query is made."""
    if values and any(
        isinstance(value, int) and not -MAX_ID - 1 <= value <= MAX_ID for value in values.values()
    ):
        raise NotFound()


def init_app(app: Flask) -> None:
    """Register the `id` URL converter, the id range guard, the problem answer for `ApiError` and the key
    cache (Redis being unreachable is answered app-wide by `connector.web.problems`)."""
    app.url_map.converters["id"] = IdConverter
    app.url_value_preprocessor(_ids_in_range)
    app.register_error_handler(ApiError, _answer)
    app.extensions[_KEY_CACHE] = KeyCache()
