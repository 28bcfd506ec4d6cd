"""Benchmark `scale`, part one: the cost of a full catalog sync as the catalog grows.

Each size is a generated feed synced once, from empty, by Storelink's `CatalogSync` in a spawned process of
its own on a fresh database (the `feed-sync` bench's in-process sync), so the peak RSS reported is that sync
process's own, imports included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from connector.bench.databases import drop_fresh, fresh_url
from connector.bench.feed_sync import _storelink
from connector.bench.processes import in_process

logger = logging.getLogger(__name__)


def sync_point(database_url: str | None, workdir: Path, variants: int) -> dict[str, Any]:
    """One full sync of a generated feed of `variants` rows: time, rows, events and the process's peak RSS."""
    from connector.sandbox.feeds import write_feed

    feed = write_feed(workdir / f"scale{variants}.csv", variants)
    url = fresh_url(database_url, workdir, f"scale{variants}")
    try:
        result = in_process(_storelink, feed, url, 1)
    finally:
        drop_fresh(database_url, url)
        feed.unlink()
    first = result["passes"][0]
    return {
        "variants": variants,
        "rows": first["rows"],
        "created": first["created"],
        "events": first["events"],
        "seconds": first["seconds"],
        "us_per_variant": first["seconds"] / max(1, first["rows"]) * 1e6,
        "peak_rss_mb": result["peak_rss_mb"],
    }


def sync_curve(
    database_url: str | None,
    workdir: Path,
    sizes: Sequence[int],
    say: Callable[[str], None],
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """A full sync at each size, smallest first. Every size but the largest is synced `rounds` times and
    the fastest counts (on a shared machine the minimum is the least disturbed), with the highest peak RSS."""
    points = []
    ordered = sorted(sizes)
    for variants in ordered:
        times = rounds if variants != ordered[-1] else 1
        say(f"full sync of {variants:,} variants" + (f", fastest of {times}…" if times > 1 else "…"))
        runs = [sync_point(database_url, workdir, variants) for _ in range(times)]
        point = {**min(runs, key=lambda r: r["seconds"]), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
        say(
            f"  {point['seconds']:.2f} s, {point['us_per_variant']:.1f} µs per variant, "
            f"peak RSS {point['peak_rss_mb']:.0f} MB"
        )
        points.append(point)
    return points
