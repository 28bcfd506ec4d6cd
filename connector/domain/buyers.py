"""Buyer identity for per-buyer limits: the key under which a buyer's purchases are counted.

Platforms send `buyer.ref` as their users type or store it, so one buyer may arrive as `alice`, `Alice`,
`" alice"`, `alice` followed by a zero-width space, or with fullwidth letters. `buyer_key` folds these onto one
key: Unicode NFKC (compatibility forms such as fullwidth letters become plain ones), case folding, NFKC again
(folding can leave a string unnormalized), every format character (Unicode category Cf: zero-width space,
joiners, word joiner, byte-order mark, bidirectional marks, soft hyphen) removed, and surrounding whitespace
stripped. A key longer than the stored column is kept as its SHA-256 digest. The order keeps `buyer.ref` as
sent; holds and the per-buyer counters use the key.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Final

MAX_KEY_LENGTH: Final = 255
"""The width of `reservations.buyer_ref`; a longer key is stored as `sha256:<hex digest>`."""


def buyer_key(ref: str) -> str:
    """The normalized key of a buyer reference; empty when nothing but spaces and format characters."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ref).casefold())
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf").strip()
    if len(visible) > MAX_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(visible.encode("utf-8")).hexdigest()
    return visible
