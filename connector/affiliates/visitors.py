"""Who a link's visitor is, without keeping who they are: a keyed hash of what the platform sends (its visitor
id), else of the browser (user agent and client address); and whether a request is a person at all (bots,
link-preview fetchers and prefetches are redirected but not counted)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import Final

logger = logging.getLogger(__name__)

PURPOSE: Final = "affiliate-visitors"
VISITOR_HEADER: Final = "X-Platform-Visitor"
VISITOR_COOKIE: Final = "sl_vid"
MAX_VISITOR_LENGTH: Final = 256
VISITOR_HASH_LENGTH: Final = 32
PREFETCH_HEADERS: Final = ("Sec-Purpose", "Purpose", "X-Moz", "X-Purpose")
HEADERS: Final = ("User-Agent", VISITOR_HEADER, *PREFETCH_HEADERS)
"""The request headers these functions read."""
_VISITOR_HASH: Final = re.compile(r"[0-9a-f]{32}")

# Crawlers, link-preview fetchers of chat and social apps, and HTTP tools: nobody clicked. Matched against the
# lowercased user agent: a case-sensitive search of literals is ten times faster than an IGNORECASE one.
BOT_USER_AGENTS: Final = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|facebookcatalog|meta-externalagent|whatsapp|"
    r"telegram|discord|skypeuripreview|embedly|pinterest|linkedin|vkshare|redditbot|preview|headless|"
    r"lighthouse|pingdom|uptime|monitor|curl/|wget/|python-requests|python-urllib|aiohttp|httpx|"
    r"go-http-client|java/|libwww|scrapy"
)


def is_bot(user_agent: str) -> bool:
    """A user agent that is not a person's browser or app (an empty one included)."""
    return not user_agent.strip() or BOT_USER_AGENTS.search(user_agent.lower()) is not None


def is_prefetch(headers: Mapping[str, str]) -> bool:
    """A speculative fetch the browser made before (or instead of) a click: `Purpose`/`Sec-Purpose:
    prefetch` (and prerender), `X-Moz: prefetch`, `X-Purpose: preview`."""
    for name in PREFETCH_HEADERS:
        value = headers.get(name, "").lower()
        if "prefetch" in value or "prerender" in value or "preview" in value:
            return True
    return False


def counted(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request of a link counts as a click: a GET by a person, not a prefetch."""
    return method == "GET" and not is_prefetch(headers) and not is_bot(headers.get("User-Agent", ""))


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 of `key` over nothing yet: copying it skips the key schedule on every visit."""
    return hmac.new(key, digestmod=hashlib.sha256)


def visitor_hash(key: bytes, source: str) -> str:
    """The visitor's keyed hash (32 hex characters): the same visitor gives the same hash for one key."""
    mac = _keyed(key).copy()
    mac.update(source.encode("utf-8", "surrogatepass"))
    return mac.hexdigest()[:VISITOR_HASH_LENGTH]


def platform_visitor(key: bytes, visitor: str) -> str:
    """The hash of a visitor the platform names (its own visitor or user id)."""
    return visitor_hash(key, "p:" + visitor)


def browser_visitor(
    key: bytes, headers: Mapping[str, str], cookies: Mapping[str, str], address: str | None
) -> str:
    """The hash of a link's visitor: the platform's visitor header, else the hash this service set in the
    visitor cookie on an earlier visit, else the user agent and the client address (neither kept)."""
    given = headers.get(VISITOR_HEADER, "").strip()
    if given and len(given) <= MAX_VISITOR_LENGTH:
        return platform_visitor(key, given)
    cookie = cookies.get(VISITOR_COOKIE, "")
    if _VISITOR_HASH.fullmatch(cookie):
        return cookie
    return visitor_hash(key, f"b:{headers.get('User-Agent', '')}\n{address or ''}")
