"""Click ids: unguessable, self-describing and signed, so a click id can be checked without a database read.

A click id is 48 URL-safe characters: base64url of a version byte, the kind (click, view, tap), the link id,
the time in milliseconds, a random nonce, and the first 12 bytes of an HMAC-SHA256 of those under a key
derived from the service's secret keys (`SecretBox.derived_keys`). A forged or altered id fails the HMAC; an
id signed under an older secret key still verifies while that key is listed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

logger = logging.getLogger(__name__)

PURPOSE: Final = "affiliate-click-ids"
VERSION: Final = 1
KINDS: Final = ("click", "view", "tap")
CLICK_ID_LENGTH: Final = 48
_LAYOUT: Final = struct.Struct(">BBQQ6s")  # version, kind, link id, milliseconds, nonce
_TAG_BYTES: Final = 12
_MAX_LINK_ID: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ClickRef:
    """What a click id says: the link, the kind, and when it happened."""

    link_id: int
    kind: str
    occurred_at: datetime


class ClickIds:
    """Issues click ids signed with the first key and verifies them against every key."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._keys = tuple(keys)
        # HMACs keyed once: each id copies one instead of running the key schedule again.
        self._macs = tuple(hmac.new(key, digestmod=hashlib.sha256) for key in self._keys)

    def issue(self, link_id: int, kind: str, at: datetime) -> str:
        """A new click id for a `kind` on link `link_id` at `at` (aware)."""
        if not 1 <= link_id <= _MAX_LINK_ID:
            raise ValueError("link id out of range")
        millis = int(at.timestamp() * 1000)
        payload = _LAYOUT.pack(VERSION, KINDS.index(kind), link_id, millis, os.urandom(6))
        return base64.urlsafe_b64encode(payload + self._tag(payload, 0)).decode("ascii")

    def _tag(self, payload: bytes, key_index: int) -> bytes:
        mac = self._macs[key_index].copy()
        mac.update(payload)
        return mac.digest()[:_TAG_BYTES]

    def verify(self, click_id: str) -> ClickRef | None:
        """What `click_id` says, if it is one these keys signed; None for anything else (never raises)."""
        if len(click_id) != CLICK_ID_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(click_id.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        payload, tag = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if len(tag) != _TAG_BYTES or base64.urlsafe_b64encode(raw).decode("ascii") != click_id:
            return None
        if not any(hmac.compare_digest(self._tag(payload, n), tag) for n in range(len(self._macs))):
            return None
        version, kind, link_id, millis, _nonce = _LAYOUT.unpack(payload)
        if version != VERSION or kind >= len(KINDS) or not 1 <= link_id <= _MAX_LINK_ID:
            return None
        try:
            occurred_at = datetime.fromtimestamp(millis / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return ClickRef(link_id=link_id, kind=KINDS[kind], occurred_at=occurred_at)
