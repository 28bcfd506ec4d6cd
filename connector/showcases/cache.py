"""A short-lived cache of showcase pages in Redis, so a showcase read by many viewers at once is computed a few
times a second rather than once per viewer.

A page (one showcase, offset, limit) is kept at most `CACHE_MS` milliseconds, under the showcase's generation:
every write to the showcase and every refresh after a catalog, stock or order change of its merchants bumps
the generation, so a page computed before is never served again. A page is stored under the generation
read *before* it was computed, so a change that lands while it is computed is not hidden by it. What a
viewer sees is therefore at most `CACHE_MS` older than the database, whatever no event announced. Redis
trouble is never an error here: the page is computed live.
"""

from __future__ import annotations

import logging
from typing import Final

from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CACHE_MS: Final = 500
"""The longest a computed page is served again."""
_PREFIX: Final = "storelink:showcase"


def _gen_key(showcase_id: int) -> str:
    return f"{_PREFIX}:gen:{showcase_id}"


def _page_key(showcase_id: int, offset: int, limit: int) -> str:
    return f"{_PREFIX}:page:{showcase_id}:{offset}:{limit}"


def lookup(redis: Redis, showcase_id: int, offset: int, limit: int) -> tuple[bytes, int | None, bytes | None]:
    """(generation now, owner client id, page) of a cached page; the page is None when absent or stale, the
    generation `b""` when Redis does not answer (then nothing is stored either)."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.get(_gen_key(showcase_id))
        pipe.get(_page_key(showcase_id, offset, limit))
        generation, stored = pipe.execute()
    except RedisError:
        return b"", None, None
    generation = generation or b"0"
    if stored is None:
        return generation, None, None
    found_generation, _, rest = stored.partition(b"|")
    client, _, page = rest.partition(b"|")
    if found_generation != generation or not client.isdigit():
        return generation, None, None
    return generation, int(client), page


def store(
    redis: Redis, showcase_id: int, offset: int, limit: int, generation: bytes, client_id: int, page: bytes
) -> None:
    if not generation:
        return
    try:
        redis.set(
            _page_key(showcase_id, offset, limit), b"%s|%d|%s" % (generation, client_id, page), px=CACHE_MS
        )
    except RedisError:
        logger.debug("showcase page not cached", extra={"showcase_id": showcase_id})


def invalidate(redis: Redis, showcase_ids: list[int]) -> None:
    """Pages computed before now are not served again."""
    if not showcase_ids:
        return
    try:
        pipe = redis.pipeline(transaction=False)
        for showcase_id in showcase_ids:
            pipe.incr(_gen_key(showcase_id))
            pipe.expire(_gen_key(showcase_id), 86_400)
        pipe.execute()
    except RedisError:  # pages then live out their CACHE_MS
        logger.warning("showcase pages not invalidated", extra={"showcases": showcase_ids})
