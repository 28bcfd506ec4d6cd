"""Deterministic Google-style product feeds (CSV, TSV, JSON Lines, JSON) written straight to disk.

The same arguments always give the same bytes. `price_shift` moves every price (and sale price) by that many
minor units so a second sync sees changes, and `bad_rows` corrupts chosen rows (price "abc") so error
reporting can be exercised. With `labels`, rows also carry a `product_type` (the product's category path, one
of a few) and a `custom_label_0` (a tag: `even` or `odd` by product number). Rows are written one at a time; no feed is ever built in memory.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from connector.domain.money import Money

FORMATS: Final = ("csv", "tsv", "jsonl", "json")
COLUMNS: Final = (
    "id",
    "item_group_id",
    "title",
    "description",
    "link",
    "image_link",
    "additional_image_link",
    "price",
    "sale_price",
    "availability",
    "quantity",
    "gtin",
    "brand",
    "mpn",
    "color",
    "size",
    "updated_at",
)
LABEL_COLUMNS: Final = ("product_type", "custom_label_0")
BAD_PRICE: Final = "abc"

_BRANDS: Final = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark")
_COLORS: Final = ("Black", "White", "Red", "Blue", "Green", "Sand", "Navy")
_SIZES: Final = ("XS", "S", "M", "L", "XL")
_TYPES: Final = ("Apparel > Shirts", "Apparel > Outerwear", "Home > Kitchen", "Toys")
_EPOCH: Final = datetime(2025, 1, 1, tzinfo=UTC)
_SHOP: Final = "https://shop.example.com"


def _mix(index: int, seed: int) -> int:
    """A cheap deterministic 32-bit hash of (index, seed): varied values without a random generator per row."""
    value = (index * 0x9E3779B1 + seed * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    value ^= value >> 15
    value = (value * 0x2C1B3C6D) & 0xFFFFFFFF
    value ^= value >> 12
    return value


def _gtin13(number: int) -> str:
    body = f"{400000000000 + number % 100000000000:012d}"
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


def feed_rows(
    rows: int,
    *,
    variants_per_product: int = 3,
    seed: int = 0,
    price_shift: int = 0,
    changed_every: int = 1,
    bad_rows: Iterable[int] = (),
    currency: str = "USD",
    labels: bool = False,
) -> Iterator[dict[str, str | int]]:
    """The feed's rows in order, one dict per row (quantity an int, everything else text)."""
    if rows < 0:
        raise ValueError("rows must not be negative")
    if variants_per_product < 1:
        raise ValueError("variants_per_product must be at least 1")
    bad = frozenset(bad_rows)
    for index in range(rows):
        h = _mix(index, seed)
        product = index // variants_per_product + 1
        position = index % variants_per_product
        product_seed = _mix(product, seed)
        base_minor = 500 + product_seed % 20000 + position * 100
        minor = max(1, base_minor + (price_shift if index % changed_every == 0 else 0))
        price = str(Money(minor, currency))
        sale_price = ""
        if h % 5 == 0:
            sale_price = str(Money(max(1, minor * 4 // 5), currency))
        out_of_stock = h % 10 == 0
        color = _COLORS[(product_seed + position) % len(_COLORS)]
        size = _SIZES[position % len(_SIZES)]
        title = f"Sample product {product:06d}"
        slug = f"p-{product:06d}"
        row: dict[str, str | int] = {
            "id": f"SKU-{index + 1:06d}",
            "item_group_id": f"P-{product:06d}",
            "title": title,
            "description": f"{title} by {_BRANDS[product_seed % len(_BRANDS)]}, in {color}, size {size}.",
            "link": f"{_SHOP}/products/{slug}",
            "image_link": f"{_SHOP}/images/{slug}.jpg",
            "additional_image_link": f"{_SHOP}/images/{slug}-2.jpg" if h % 3 == 0 else "",
            "price": BAD_PRICE if index in bad else price,
            "sale_price": sale_price,
            "availability": "out_of_stock" if out_of_stock else "in_stock",
            "quantity": 0 if out_of_stock else h % 50 + 1,
            "gtin": _gtin13(index + 1 + seed * 1_000_003),
            "brand": _BRANDS[product_seed % len(_BRANDS)],
            "mpn": f"MPN-{index + 1:06d}",
            "color": color,
            "size": size,
            "updated_at": (_EPOCH + timedelta(seconds=index)).isoformat().replace("+00:00", "Z"),
        }
        if labels:
            row["product_type"] = _TYPES[product % len(_TYPES)]
            row["custom_label_0"] = "odd" if product % 2 else "even"
        yield row


def write_feed(
    path: str | os.PathLike[str],
    rows: int,
    *,
    fmt: str = "csv",
    variants_per_product: int = 3,
    seed: int = 0,
    price_shift: int = 0,
    changed_every: int = 1,
    bad_rows: Iterable[int] = (),
    currency: str = "USD",
    labels: bool = False,
) -> Path:
    """Write a feed of `rows` variant rows (`variants_per_product` per item_group_id) and return its path.

    `price_shift` applies to every `changed_every`-th row; `labels` adds the tag and category columns. `bad_rows` are 0-based data-row indexes whose price is written as "abc". The file appears atomically:
    it is written beside `path` and renamed over it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    records = feed_rows(
        rows,
        variants_per_product=variants_per_product,
        seed=seed,
        price_shift=price_shift,
        changed_every=changed_every,
        bad_rows=bad_rows,
        currency=currency,
        labels=labels,
    )
    columns = COLUMNS + LABEL_COLUMNS if labels else COLUMNS
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            if fmt in ("csv", "tsv"):
                writer = csv.writer(out, "excel-tab" if fmt == "tsv" else "excel")
                writer.writerow(columns)
                for record in records:
                    writer.writerow([record[column] for column in columns])
            elif fmt == "jsonl":
                for record in records:
                    out.write(json.dumps(record, ensure_ascii=False))
                    out.write("\n")
            else:
                out.write("[")
                for number, record in enumerate(records):
                    out.write(",\n" if number else "\n")
                    out.write(json.dumps(record, ensure_ascii=False))
                out.write("\n]\n")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target
