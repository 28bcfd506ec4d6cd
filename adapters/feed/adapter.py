"""The product-feed store adapter: a merchant's catalog and stock read from a feed file or URL.

Config
    ``url``               required: an http(s) URL, a ``file://`` URL or a local path (relative paths are
                          resolved against the working directory when the config is validated).
    ``format``            ``csv`` | ``tsv`` | ``jsonl`` | ``json``; inferred from the extension when absent
                          (``.csv``, ``.tsv``, ``.txt`` = tab-separated, ``.jsonl``/``.ndjson``, ``.json``);
                          http(s) URLs without a known extension are read as CSV.
    ``default_currency``  ISO 4217 code for prices written without one ("12.99").
    ``location``          location ref of the stock levels (default ``"default"``).
    ``encoding``          text encoding of CSV, TSV and JSON Lines feeds (default UTF-8, BOM skipped);
                          JSON feeds are always UTF-8.
Credentials (optional, http(s) only): ``username`` and ``password`` (basic auth) or ``token`` (Bearer).
    ``split_secrets`` moves a URL's query string (``url_query``) and ``user:password@`` into them when the
    merchant is stored, so the config and store_ref hold the URL without them.

Feed format
    Columns are modelled on Google Merchant Center product data; names are case-insensitive and trimmed.

    ``id``                    required: the variant id.
    ``item_group_id``         the product id; when absent, the product id is the row's ``id``.
    ``title``                 required.
    ``description``, ``link``, ``image_link``, ``additional_image_link`` (comma-separated).
    ``price``                 required: "12.99 USD" (or "12.99" with ``default_currency``); no more decimals
                              than the currency has (JPY 0, USD 2, KWD 3).
    ``sale_price``            when present and lower than ``price``, it is the selling price and ``price``
                              becomes the compare-at price.
    ``availability``          in_stock | out_of_stock | preorder | backorder ("in stock" and "out of stock"
                              accepted); empty means in_stock. It only matters when ``quantity`` is empty.
    ``quantity``              non-negative whole number; when empty, 0 for out_of_stock, else not tracked.
    ``gtin``                  barcode.  ``brand``: vendor.  ``sku`` (else ``mpn``): SKU.
    ``color``, ``size``       variant options; together they make the variant title ("Red / M"), which is
                              the product title when both are empty.
    ``updated_at``            optional ISO-8601 date-time (UTC when it has no offset).
    ``product_type``          the merchant's own category path ("Home > Kitchen > Cookware"): one collection
                              (id ``product-type:<handle>``, the handle made from the path).
    ``collections``           comma-separated collection names, each a collection (id and handle made from
                              the name: "Summer Sale" is ``summer-sale``).
    ``custom_label_0`` to ``custom_label_4``, ``tags`` (comma-separated): the product's tags.
                              Tags and collections are the product's: those of its first row count.

    Files: CSV with a header row; TSV (tab-separated, header row); JSON Lines (one object per line); JSON (a
    top-level array of objects, or an object whose ``items`` member is that array, read incrementally).

Reading
    Consecutive rows with the same ``item_group_id`` make one product; a group that comes back later in the
    file yields that product again with its other variants (the catalog sync merges them). Unusable rows
    (missing id or title, bad price, bad quantity, an id already seen in the pass) are skipped and reported
    by ``iter_catalog_errors()`` as (position, reason): the physical line for CSV/TSV/JSON Lines (the header
    is line 1) and the 1-based record number for JSON. A broken header, an unreadable file or a truncated
    JSON document fails the whole pass instead, so a damaged feed never looks like an emptied catalog.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import ijson

from adapters.feed import const, webhook
from adapters.feed.client import FeedClient, local_path
from adapters.feed.mapper import ParseMemo, RowParts, build_product, field_index, parse_fields, parse_row
from adapters.feed.records import (
    Row,
    delimited_header,
    delimited_records,
    delimited_rows,
    json_rows,
    jsonl_rows,
)
from connector.domain.catalog import InventoryLevel, Product
from connector.domain.errors import (
    PermanentError,
    RetryableError,
    StorelinkError,
    ValidationError,
    unreadable_input,
)
from connector.domain.orders import ExternalOrderRef, Order
from connector.domain.ports import (
    Capability,
    CatalogReport,
    HttpOptions,
    ReportsCatalogSkips,
    WebhookEnvelope,
)
from connector.domain.store_events import StoreEvent

logger = logging.getLogger(__name__)

_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_LOCATION_CHARS: Final = 200


@dataclass(slots=True)
class _PassReport(CatalogReport):
    """A feed pass's report, which also knows blank spreadsheet rows are not records."""

    def unusable(self, position: int, row: Mapping[str, str], problem: ValueError) -> None:
        """A row that did not parse is skipped, unless it is blank (as spreadsheets leave at the end)."""
        if any(value.strip() for value in row.values()):
            self.skip(position, str(problem), (row.get("id") or "").strip() or None)


def _normalize_remote(url: str) -> str:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValidationError(f"url {url!r} has no host", details={"field": "url"})
    if parts.username or parts.password:
        raise ValidationError(
            "url must not embed credentials; give them as username and password credentials",
            details={"field": "url"},
        )
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"url {url!r} has an invalid port", details={"field": "url"}) from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def _without_secrets(url: str) -> str:
    """`url` without user:password@, query string or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _normalize_url(raw: str) -> tuple[str, bool]:
    """(normalized url, remote?): http(s) URLs cleaned up, local paths and file URLs as absolute file URLs."""
    if "\x00" in raw:
        raise ValidationError("url contains a NUL character", details={"field": "url"})
    scheme = urlsplit(raw).scheme.lower()
    if scheme in const.URL_SCHEMES:
        return _normalize_remote(raw), True
    if scheme == "file":
        if urlsplit(raw).netloc not in ("", "localhost"):
            raise ValidationError("file URLs must name a local file (file:///path)", details={"field": "url"})
        path = local_path(raw)
    elif len(scheme) <= 1:  # no scheme, or a Windows drive letter
        path = raw
    else:
        raise ValidationError(
            f"url scheme {scheme!r} is not supported; use an http(s) URL, a file:// URL or a local path",
            details={"field": "url"},
        )
    if not path:
        raise ValidationError("url names no file", details={"field": "url"})
    return Path(os.path.abspath(path)).as_uri(), False


def _infer_format(url: str, remote: bool) -> str:
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    found = const.EXTENSION_FORMATS.get(suffix)
    if found:
        return found
    if remote:
        return const.HTTP_DEFAULT_FORMAT
    raise ValidationError(
        f"cannot tell the feed format from the extension {suffix or '(none)'!r}; "
        f"set format to one of {', '.join(sorted(const.FORMATS))}",
        details={"field": "format"},
    )


def _optional_text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{key} must be text, got {type(value).__name__}", details={"field": key})
    return value.strip() or None


class FeedAdapter(ReportsCatalogSkips):
    """A store whose catalog is a product feed (CSV, TSV, JSON Lines or JSON) at a URL or on disk."""

    kind: ClassVar[str] = const.KIND
    capabilities: ClassVar[frozenset[Capability]] = const.CAPABILITIES

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], http: HttpOptions) -> None:
        self.config = self.validate_config(config)
        self._format: str = self.config["format"]
        self._encoding: str = self.config["encoding"]
        self._currency: str | None = self.config["default_currency"]
        self._location: str = self.config["location"]
        self._client = FeedClient(self.config["url"], http, credentials)
        self._webhook_verifier = webhook.verifier(credentials.get("webhook_secret"))
        self._report = _PassReport()

    # -- configuration -------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized config, or raise ValidationError naming the field and the problem."""
        if not isinstance(config, Mapping):
            raise ValidationError("feed config must be an object")
        unknown = sorted(str(key) for key in config if key not in const.CONFIG_KEYS)
        if unknown:
            raise ValidationError(
                f"unknown feed config key(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(const.CONFIG_KEYS))}",
                details={"fields": unknown},
            )
        raw_url = _optional_text(config, "url")
        if raw_url is None:
            raise ValidationError(
                "url is required: an http(s) URL, a file:// URL or a local path", details={"field": "url"}
            )
        url, remote = _normalize_url(raw_url)

        fmt = _optional_text(config, "format")
        if fmt is None:
            fmt = _infer_format(url, remote)
        else:
            fmt = fmt.lower()
            if fmt not in const.FORMATS:
                raise ValidationError(
                    f"format {fmt!r} is not one of {', '.join(sorted(const.FORMATS))}",
                    details={"field": "format"},
                )

        currency = _optional_text(config, "default_currency")
        if currency is not None:
            currency = currency.upper()
            if not _CURRENCY.fullmatch(currency):
                raise ValidationError(
                    f"default_currency {currency!r} is not a 3-letter ISO 4217 code",
                    details={"field": "default_currency"},
                )

        location = _optional_text(config, "location") or const.DEFAULT_LOCATION
        if len(location) > _MAX_LOCATION_CHARS:
            raise ValidationError(
                f"location is longer than {_MAX_LOCATION_CHARS} characters", details={"field": "location"}
            )

        encoding = _optional_text(config, "encoding") or const.DEFAULT_ENCODING
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValidationError(
                f"encoding {encoding!r} is unknown", details={"field": "encoding"}
            ) from None

        return {
            "url": url,
            "format": fmt,
            "default_currency": currency,
            "location": location,
            "encoding": encoding,
        }

    @classmethod
    def split_secrets(
        cls, config: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """(config, credentials) with the secrets of an http(s) feed URL moved into the credentials: its query
        string as ``url_query`` (tokens often travel there) and any ``user:password@`` as ``username`` and
        ``password``. The config keeps the URL without them, which is what is shown."""
        moved = dict(credentials)
        raw = config.get("url") if isinstance(config, Mapping) else None
        if not isinstance(raw, str) or urlsplit(raw.strip()).scheme.lower() not in const.URL_SCHEMES:
            return dict(config), moved
        parts = urlsplit(raw.strip())
        if parts.username is not None or parts.password is not None:
            if "username" in moved or "password" in moved or "token" in moved:
                raise ValidationError(
                    "url embeds credentials and credentials are given too; give them once",
                    details={"field": "url"},
                )
            moved["username"] = unquote(parts.username or "")
            moved["password"] = unquote(parts.password or "")
        if parts.query:
            moved["url_query"] = parts.query
        return {**config, "url": _without_secrets(raw.strip())}, moved

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        """The normalized feed URL (local paths as absolute file:// URLs) without query or credentials."""
        url: str = cls.validate_config(config)["url"]
        return _without_secrets(url)

    # -- reading -------------------------------------------------------------------------------------

    def check_connection(self) -> None:
        """Open the feed and read its header and first record; raises what opening or reading raises."""
        with closing(self._rows()) as records:
            next(records, None)
        logger.info("feed reachable", extra={"url": self._client.location, "format": self._format})

    def iter_catalog(self, since: datetime | None = None) -> Generator[Product, None, None]:
        """Stream products in feed order; rows updated before `since` (when given and dated) are left out."""
        self._report = _PassReport()
        return self._catalog(since, self._report)

    def _catalog(self, since: datetime | None, report: _PassReport) -> Generator[Product, None, None]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        max_variants = const.MAX_VARIANTS_PER_PRODUCT
        seen: set[str] = set()  # one id per row kept, so its size is the count of rows read
        group: list[RowParts] = []
        group_id: str | None = None
        products = 0
        with closing(self._parsed(report)) as parsed:
            for position, parts in parsed:
                variant_id = parts.variant.external_id
                if variant_id in seen:
                    report.skip(position, f"duplicate id {variant_id!r}: an earlier row has it")
                    continue
                seen.add(variant_id)
                if since is not None and parts.updated_at is not None and parts.updated_at < since:
                    continue
                if parts.product_id == group_id and len(group) < max_variants:
                    group.append(parts)
                    continue
                if group:
                    products += 1
                    yield build_product(group)
                group = [parts]
                group_id = parts.product_id
        if group:
            products += 1
            yield build_product(group)
        log = logger.warning if report.skipped else logger.info
        log(
            "feed read",
            extra={
                "url": self._client.location,
                "rows": len(seen),
                "products": products,
                "skipped": report.skipped,
            },
        )

    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]:
        """Stock of the given variants, in the order asked, read from the feed; unknown ids are left out.

        A variant's level comes from the first row with its id that the catalog would accept.
        """
        wanted = dict.fromkeys(variant_refs)
        found: dict[str, InventoryLevel] = {}
        if not wanted:
            return []
        with closing(self._rows()) as records:
            for _, row, _problem in records:
                if row is None:
                    continue
                variant_id = row.get("id", "").strip()
                if variant_id not in wanted or variant_id in found:
                    continue
                try:
                    parts = parse_row(row, self._currency)
                except ValueError:
                    continue
                found[variant_id] = InventoryLevel(
                    variant_external_id=variant_id,
                    location_ref=self._location,
                    available=parts.variant.quantity,
                    source_updated_at=parts.updated_at,
                )
                if len(found) == len(wanted):
                    break
        return [found[ref] for ref in wanted if ref in found]

    # -- record readers ------------------------------------------------------------------------------

    def _rows(self) -> Generator[Row, None, None]:
        """Every record of the feed as (position, row, problem), translating read failures to errors."""
        with self._read_errors():
            if self._format == "json":
                with self._client.open_binary() as binary:
                    yield from json_rows(binary)
            else:
                with self._client.open_text(self._encoding) as text:
                    if self._format == "jsonl":
                        yield from jsonl_rows(text)
                    else:
                        yield from delimited_rows(text, self._dialect())

    def _parsed(self, report: _PassReport) -> Generator[tuple[int, RowParts], None, None]:
        """Every usable record of the feed parsed, as (position, parts); the others are reported to `report`.

        CSV and TSV records are parsed from their fields by column position, without a dict per row.
        """
        if self._format in ("csv", "tsv"):
            return self._delimited_parts(report)
        return _parse_rows(self._rows(), self._currency, report)

    def _delimited_parts(self, report: _PassReport) -> Generator[tuple[int, RowParts], None, None]:
        """`_parsed` of a CSV or TSV feed: `delimited_records` parsed by column position, with the same positions
        and problems. This is the catalog's hot path, so no dict is built for a row that parses."""
        currency = self._currency
        memo = ParseMemo()
        dialect = self._dialect()
        with self._read_errors(), self._client.open_text(self._encoding) as text:
            reader = csv.reader(text, dialect)
            header = delimited_header(reader, dialect)
            width = len(header)
            pick, padded_width = field_index(header)
            for start, record, problem in delimited_records(reader, width):
                if record is None:
                    report.skip(start, problem or "unreadable record")
                    continue
                if len(record) > width:
                    del record[width:]  # blank fields past the header: absent columns read ""
                if len(record) < padded_width:
                    record += [""] * (padded_width - len(record))  # the fields a short record lacks
                try:
                    parts = parse_fields(pick(record), currency, memo)
                except ValueError as exc:
                    report.unusable(start, dict(zip(header, record, strict=False)), exc)
                    continue
                yield start, parts

    def _dialect(self) -> str:
        return "excel-tab" if self._format == "tsv" else "excel"

    @contextmanager
    def _read_errors(self) -> Iterator[None]:
        """Read failures inside the block leave as `connector.domain.errors` types."""
        try:
            yield
        except StorelinkError:
            raise
        except UnicodeDecodeError as exc:
            raise PermanentError(
                f"feed {self._client.location} is not valid {self._encoding} text ({exc.reason}); "
                "set the encoding in the merchant config",
                code="bad_encoding",
            ) from None
        except ijson.JSONError:  # its message quotes the text around the error: not repeated
            raise PermanentError(f"feed {self._client.location} is not valid JSON", code="bad_json") from None
        except OSError as exc:
            raise RetryableError(f"feed {self._client.location} could not be read: {exc}", code="io") from exc

    # -- port methods this store kind does not support -----------------------------------------------

    def _unsupported(self, operation: str) -> PermanentError:
        return PermanentError(f"feed stores do not support {operation}", code="unsupported")

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None:
        raise self._unsupported("inventory writes")

    def create_order(self, order: Order, idempotency_key: str) -> ExternalOrderRef:
        raise self._unsupported("order push")

    def find_order(self, idempotency_key: str) -> ExternalOrderRef | None:
        raise self._unsupported("order push")

    def cancel_order(self, ref: ExternalOrderRef) -> None:
        raise self._unsupported("order push")

    # -- pushed changes (adapters.feed.webhook) -------------------------------------------------------------

    @classmethod
    def webhook_store_ref(cls, headers: Mapping[str, str]) -> str | None:
        """None: feed deliveries are addressed to `/webhooks/feed/<merchant id>`."""
        return None

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """Standard Webhooks signature with the `webhook_secret` credential; False when there is none."""
        return webhook.verify(self._webhook_verifier, headers, raw_body)

    def webhook_envelope(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEnvelope:
        with unreadable_input("the delivery"):
            return webhook.envelope(headers, raw_body)

    def parse_webhook(self, topic: str, headers: Mapping[str, str], raw_body: bytes) -> list[StoreEvent]:
        with unreadable_input("the delivery"):
            return webhook.parse(topic, raw_body)


def _parse_rows(
    rows: Generator[Row, None, None], currency: str | None, report: _PassReport
) -> Generator[tuple[int, RowParts], None, None]:
    """The usable rows parsed, as (position, parts); the others are reported to `report`."""
    memo = ParseMemo()
    with closing(rows):
        for position, row, problem in rows:
            if row is None:
                report.skip(position, problem or "unreadable record")
                continue
            try:
                parts = parse_row(row, currency, memo)
            except ValueError as exc:
                report.unusable(position, row, exc)
                continue
            yield position, parts
