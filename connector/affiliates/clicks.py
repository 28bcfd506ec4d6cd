"""Clicks on creators' links: recorded fast, deduplicated per visitor, written to the database in batches, and
resolved from a click id for attribution.

- `record` is one Redis round trip: a Lua script that answers the visitor's click id of the dedupe window if
  there is one, else keeps the new click id for the window and appends the click to a buffer list. A repeat
  of a click the same web process recorded itself is answered without one (Redis would answer the same).
- `flush` (the scheduler's `flush_job`, every AFFILIATE_CLICK_FLUSH_SECONDS) moves the buffer to
  `affiliate_clicks` in batches under a lock; a batch is removed from the buffer only once committed, and
  writing it again changes nothing (`click_id` is unique), so a flusher killed mid-way loses nothing.
- `resolve_click` is what attribution calls: a click id whose signature holds names its link, kind and time,
  so a click still in the buffer resolves too (its row is written then; the flush completes it).
- While Redis is unreachable a click is written to the database at once, without deduplication.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis import Redis
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.affiliates.click_ids import PURPOSE as CLICK_IDS
from connector.affiliates.click_ids import ClickIds, ClickRef
from connector.affiliates.visitors import PURPOSE as VISITORS
from connector.infra import runtime
from connector.infra.models import AffiliateClick, AffiliateLink, AffiliateProgram, Merchant

logger = logging.getLogger(__name__)

BUFFER: Final = "storelink:affiliate-clicks:buffer"
FLUSH_LOCK: Final = "storelink:affiliate-clicks:flush-lock"
DEDUPE_PREFIX: Final = "storelink:affiliate-clicks:seen:"
FLUSH_BATCH: Final = 2000
FLUSH_LOCK_SECONDS: Final = 120
LINK_CACHE_SECONDS: Final = 60.0
FUTURE_SKEW: Final = timedelta(minutes=5)
CODE_MAX_LENGTH: Final = 24
RECALL_MARGIN: Final = 2.0
RECALL_SIZE: Final = 20_000
_CODE: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{CODE_MAX_LENGTH}}}")

# KEYS[1] the visitor's dedupe key, KEYS[2] the buffer; ARGV: new click id, window seconds, buffered click.
_RECORD_LUA: Final = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('RPUSH', KEYS[2], ARGV[3])
return false
"""
_RECORD_SHA: Final = hashlib.sha1(_RECORD_LUA.encode(), usedforsecurity=False).hexdigest()  # its EVALSHA name

# KEYS[1] the flush lock, KEYS[2] the buffer; ARGV: the lock's token, how many flushed items to drop.
_TRIM_LUA: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_UNLOCK_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# --- links ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a click needs of its link: where it lands and whose it is (a link never changes its product)."""

    link_id: int
    code: str
    merchant_id: int
    product_id: int
    variant_id: int | None
    platform_client_id: int | None
    window_seconds: int


class _LinkCache:
    """Links by (database, code) for `LINK_CACHE_SECONDS` (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, LinkTarget]] = {}

    def get(self, database: str, code: str) -> LinkTarget | None:
        entry = self._entries.get((database, code))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, database: str, target: LinkTarget) -> None:
        with self._lock:
            if len(self._entries) > 50_000:
                self._entries.clear()
            self._entries[(database, target.code)] = (time.monotonic() + LINK_CACHE_SECONDS, target)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


link_cache = _LinkCache()


def valid_code(code: str) -> bool:
    """Whether `code` could be a link's code (URL-safe, at most 24 characters): others are not looked up."""
    return _CODE.fullmatch(code) is not None


def find_link(rt: runtime.Runtime, code: str) -> LinkTarget | None:
    """The link of `code` (cached), or None."""
    if not valid_code(code):
        return None
    database = rt.db.url
    target = link_cache.get(database, code)
    if target is not None:
        return target
    with rt.db.session() as session:
        row = session.execute(
            select(
                AffiliateLink.id,
                AffiliateLink.merchant_id,
                AffiliateLink.product_id,
                AffiliateLink.variant_id,
                Merchant.platform_client_id,
                AffiliateProgram.attribution_window_seconds,
            )
            .join(Merchant, Merchant.id == AffiliateLink.merchant_id)
            .join(AffiliateProgram, AffiliateProgram.id == AffiliateLink.program_id)
            .where(AffiliateLink.code == code)
        ).first()
    if row is None:
        return None
    target = LinkTarget(row[0], code, row[1], row[2], row[3], row[4], int(row[5]))
    link_cache.put(database, target)
    return target


def landing_url(template: str, target: LinkTarget, click_id: str) -> str:
    """The product's page on the platform (AFFILIATE_LANDING_URL) for `target`, carrying `click_id`."""
    return template.format(
        product_id=target.product_id,
        variant_id=target.variant_id if target.variant_id is not None else "",
        merchant_id=target.merchant_id,
        code=target.code,
        click_id=click_id,
    )


def landing_url_without_click(template: str, target: LinkTarget) -> str:
    """The landing URL for a visit that is not counted: no click id (its query parameter is left out)."""
    parts = urlsplit(landing_url(template, target, ""))
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if value]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- recording -----------------------------------------------------------------------------------------------


_signers: dict[tuple[bytes, ...], ClickIds] = {}


def click_ids(rt: runtime.Runtime) -> ClickIds:
    """The click id signer of the runtime's secret keys (made once per set of keys)."""
    keys = rt.secrets.derived_keys(CLICK_IDS)
    found = _signers.get(keys)
    if found is None:
        found = _signers[keys] = ClickIds(keys)
    return found


def visitor_key(rt: runtime.Runtime) -> bytes:
    """The key visitor hashes are made with (the first secret key's)."""
    return rt.secrets.derived_keys(VISITORS)[0]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A click's id, and whether it is new (False: the visitor's click of the dedupe window, answered again)."""

    click_id: str
    new: bool


@dataclass(slots=True)
class _Held:
    """A thread's record connection to one Redis, and the clicks it recorded: dedupe key -> (until, click id)."""

    redis: Redis
    pid: int
    connection: AbstractConnection
    recorded: dict[str, tuple[float, str]]


class _RecordChannel:
    """The record script's own Redis connection, one per thread and process, kept open: a click is one
    EVALSHA written and its answer read, with no pool checkout, no pending-data poll and no retry wrapper
    (redis-py's per-command overhead is about as long as the round trip itself).

    A visitor's repeat within the window of a click this thread recorded itself is answered from memory: Redis
    holds that dedupe key until at least the window after the script ran, so it would answer the same click
    id (`RECALL_MARGIN` seconds are left for the clocks)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _held(self, redis: Redis) -> _Held:
        held: _Held | None = getattr(self._local, "held", None)
        pid = os.getpid()
        if held is not None and held.redis is redis and held.pid == pid:
            return held
        if held is not None and held.pid == pid:
            held.connection.disconnect()
        pool = redis.connection_pool
        held = _Held(redis, pid, pool.connection_class(**pool.connection_kwargs), {})
        self._local.held = held
        return held

    def recall(self, redis: Redis, dedupe_key: str) -> str | None:
        """The click id this thread recorded under `dedupe_key` within its window, if it did."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.redis is not redis or held.pid != os.getpid():
            return None
        recalled = held.recorded.get(dedupe_key)
        if recalled is not None and recalled[0] > time.monotonic():
            return recalled[1]
        return None

    def record(self, redis: Redis, keys: tuple[str, str], args: tuple[str, int, str]) -> Any:
        """Run the record script; a connection Redis dropped is reopened once."""
        held = self._held(redis)
        began = time.monotonic()
        try:
            found = self._evalsha(held.connection, keys, args)
        except (RedisConnectionError, RedisTimeoutError):
            held.connection.disconnect()  # a retried click finds its own dedupe key: it is not counted twice
            found = self._evalsha(held.connection, keys, args)
        window = args[1]
        if found is None and window > 2 * RECALL_MARGIN:
            if len(held.recorded) >= RECALL_SIZE:
                held.recorded.clear()
            held.recorded[keys[0]] = (began + window - RECALL_MARGIN, args[0])
        return found

    @staticmethod
    def _evalsha(connection: AbstractConnection, keys: tuple[str, str], args: tuple[str, int, str]) -> Any:
        try:
            connection.send_command("EVALSHA", _RECORD_SHA, len(keys), *keys, *args)
            return connection.read_response()
        except NoScriptError:  # a fresh or flushed Redis: load the script, then run it
            connection.send_command("SCRIPT", "LOAD", _RECORD_LUA)
            connection.read_response()
            connection.send_command("EVALSHA", _RECORD_SHA, len(keys), *keys, *args)
            return connection.read_response()


_channel = _RecordChannel()


class _Scripts:
    """The flush's Lua scripts, registered once per Redis connection pool."""

    def __init__(self) -> None:
        self._by_redis: dict[int, tuple[Any, Any]] = {}

    def get(self, redis: Redis) -> tuple[Any, Any]:
        found = self._by_redis.get(id(redis))
        if found is None or found[0].registered_client is not redis:
            found = (redis.register_script(_TRIM_LUA), redis.register_script(_UNLOCK_LUA))
            self._by_redis[id(redis)] = found
        return found


_scripts = _Scripts()


def _buffered(click_id: str, link_id: int, visitor: str | None, kind: str, at: datetime) -> str:
    # By hand (the same JSON as json.dumps with compact separators): click ids are URL-safe base64, kinds are
    # words, and the visitor alone is encoded.
    return (
        f'{{"c":"{click_id}","l":{int(link_id)},"v":{json.dumps(visitor)},"k":"{kind}",'
        f'"t":{int(at.timestamp() * 1000)}}}'
    )


def record(
    rt: runtime.Runtime,
    signer: ClickIds,
    link_id: int,
    visitor: str,
    *,
    kind: str = "click",
    at: datetime | None = None,
) -> Recorded:
    """Count a `kind` of `visitor` (a visitor hash) on the link, once per dedupe window: one Redis round trip.

    While Redis is unreachable the click is written to the database at once (not deduplicated)."""
    dedupe_key = f"{DEDUPE_PREFIX}{link_id}:{kind}:{visitor}"
    recalled = _channel.recall(rt.redis, dedupe_key)
    if recalled is not None:  # a repeat of a click this thread recorded: Redis would answer the same
        return Recorded(recalled, False)
    at = at or datetime.now(UTC)
    click_id = signer.issue(link_id, kind, at)
    try:
        found = _channel.record(
            rt.redis,
            (dedupe_key, BUFFER),
            (
                click_id,
                rt.settings.affiliate_click_dedupe_seconds,
                _buffered(click_id, link_id, visitor, kind, at),
            ),
        )
    except RedisError as exc:
        logger.warning(
            "click written directly: Redis unreachable", extra={"link_id": link_id, "error": str(exc)}
        )
        with rt.db.engine.begin() as conn:
            _insert(conn, [_row(click_id, link_id, visitor, kind, at)])
        return Recorded(click_id, True)
    if found is not None:
        return Recorded(found.decode() if isinstance(found, bytes) else str(found), False)
    return Recorded(click_id, True)


# --- flushing ------------------------------------------------------------------------------------------------


def _row(click_id: str, link_id: int, visitor: str | None, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "click_id": click_id,
        "link_id": link_id,
        "visitor_hash": visitor,
        "kind": kind,
        "occurred_at": at,
    }


def _parse(item: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(item)
        return _row(
            str(data["c"]),
            int(data["l"]),
            str(data["v"]) if data.get("v") else None,
            str(data["k"]),
            datetime.fromtimestamp(int(data["t"]) / 1000, UTC),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        logger.error(
            "unreadable buffered click dropped", extra={"item": item[:200].decode("utf-8", "replace")}
        )
        return None


def _insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert clicks; one already written is completed (its visitor hash) and otherwise left as it is."""
    if not rows:
        return
    table = AffiliateClick.__table__
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["click_id"],
        set_={"visitor_hash": statement.excluded.visitor_hash},
        where=table.c.visitor_hash.is_(None) & statement.excluded.visitor_hash.is_not(None),
    )
    # Clicks of links deleted since are dropped rather than failing the batch.
    links = {row["link_id"] for row in rows}
    alive = set(conn.scalars(select(AffiliateLink.id).where(AffiliateLink.id.in_(links))))
    kept = [row for row in rows if row["link_id"] in alive]
    if kept:
        conn.execute(statement, kept)


def flush(rt: runtime.Runtime | None = None, *, batch: int = FLUSH_BATCH) -> int:
    """Write the buffered clicks to `affiliate_clicks`, `batch` at a time; returns how many were taken off the
    buffer (0 when another flush holds the lock)."""
    rt = rt or runtime.current()
    trim, unlock = _scripts.get(rt.redis)
    token = secrets.token_hex(16)
    if not rt.redis.set(FLUSH_LOCK, token, nx=True, ex=FLUSH_LOCK_SECONDS):
        return 0
    total = 0
    try:
        while True:
            items: list[bytes] = list(rt.redis.lrange(BUFFER, 0, batch - 1))  # type: ignore[arg-type]
            if not items:
                break
            rows = [row for row in (_parse(item) for item in items) if row is not None]
            with rt.db.engine.begin() as conn:
                _insert(conn, rows)
            if not trim(keys=[FLUSH_LOCK, BUFFER], args=[token, len(items), FLUSH_LOCK_SECONDS]):
                logger.warning("click flush lost its lock; the next flush goes on", extra={"written": total})
                return total
            total += len(items)
            if len(items) < batch:
                break
    finally:
        unlock(keys=[FLUSH_LOCK], args=[token])
    if total:
        logger.info("clicks flushed", extra={"clicks": total})
    return total


def flush_job() -> int:
    """The scheduler's periodic job: flush the click buffer."""
    return flush(runtime.current())


def buffered(rt: runtime.Runtime) -> int:
    """Clicks waiting in the buffer."""
    return int(rt.redis.llen(BUFFER))


# --- attribution ---------------------------------------------------------------------------------------------


def resolve_click(
    session: Session, click_id: str, now: datetime | None = None, *, signer: ClickIds | None = None
) -> AffiliateClick | None:
    """The click `click_id` names, or None for an id this service did not sign, one dated in the future, or
    one whose link is gone. A click still in the Redis buffer resolves too: its signed id says its link, kind
    and time, and its row is written now (in `session`'s transaction; the flush adds its visitor hash)."""
    if not isinstance(click_id, str):
        return None
    signer = signer or click_ids(runtime.current())
    ref = signer.verify(click_id)
    now = now or datetime.now(UTC)
    if ref is None or ref.occurred_at > now + FUTURE_SKEW:
        return None
    found = session.scalars(select(AffiliateClick).where(AffiliateClick.click_id == click_id)).first()
    if found is not None:
        return found
    return _materialize(session, click_id, ref)


def _materialize(session: Session, click_id: str, ref: ClickRef) -> AffiliateClick | None:
    if session.get(AffiliateLink, ref.link_id) is None:
        return None
    _insert(session.connection(), [_row(click_id, ref.link_id, None, ref.kind, ref.occurred_at)])
    return session.scalars(select(AffiliateClick).where(AffiliateClick.click_id == click_id)).first()
