"""Planner statistics kept current while a sync grows a merchant's catalog on PostgreSQL.

A first sync of a large catalog multiplies the rows of `products`, `variants` and `inventory_levels` within
one pass, faster than autovacuum's analyze follows (or at all where it is off). With statistics from when the
tables were small, PostgreSQL looks a batch's rows up by merchant through `ix_variants_merchant_inventory_item`
and filters every stored row of the merchant, instead of using the (merchant, external id) unique index, so
each batch costs in proportion to the catalog written so far and the pass grows quadratically (a 1M-variant
sync went from 166 to over 900 µs per variant by the 800,000th). `Analyzer` runs ANALYZE on those tables each
time the rows the pass created double, from `first` on, in a short transaction of its own: a handful of
runs for any catalog size, each sampling a bounded number of rows.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text

from connector.infra.db import Database

logger = logging.getLogger(__name__)

TABLES = ("products", "variants", "inventory_levels")


class Analyzer:
    def __init__(self, db: Database, *, first: int = 20_000) -> None:
        self.db = db
        self.enabled = db.engine.dialect.name == "postgresql"
        self.next_at = first

    def created(self, total: int) -> None:
        """The pass has created `total` rows so far: refresh the statistics once that doubled."""
        if not self.enabled or total < self.next_at:
            return
        self.next_at = 2 * total
        started = time.perf_counter()
        try:
            with self.db.engine.begin() as conn:
                for table in TABLES:
                    conn.execute(text(f"ANALYZE {table}"))
        except Exception:  # statistics only steer plans: a sync never fails for them
            logger.warning("refreshing planner statistics failed", exc_info=True)
            return
        logger.info(
            "planner statistics refreshed",
            extra={"rows_created": total, "seconds": round(time.perf_counter() - started, 3)},
        )
