"""Reading a feed file's records as numbered rows: CSV and TSV (header checked, each record at its first
physical line), JSON Lines, and JSON documents read incrementally."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

import ijson

from adapters.feed import const
from adapters.feed.mapper import missing_columns, normalize_header, normalize_record
from connector.domain.errors import PermanentError

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

Row = tuple[int, dict[str, str] | None, str | None]
"""(position, row, problem): `row` is None when the record could not be read, and `problem` says why."""
Record = tuple[int, list[str] | None, str | None]
"""A CSV/TSV `Row` with the fields as read, in header order, instead of by column name."""


def delimited_rows(text: IO[str], dialect: str) -> Iterator[Row]:
    reader = csv.reader(text, dialect)
    header = delimited_header(reader, dialect)
    for position, record, problem in delimited_records(reader, len(header)):
        yield position, None if record is None else dict(zip(header, record, strict=False)), problem


def delimited_header(reader: CsvReader, dialect: str) -> list[str]:
    """The normalized header row; raises PermanentError when it is missing, unreadable or lacks a column."""
    try:
        first = next(reader)
    except StopIteration:
        raise PermanentError("feed is empty: it has no header row", code="bad_header") from None
    except csv.Error as exc:
        raise PermanentError(f"feed header is unreadable: {exc}", code="bad_header") from None
    try:
        header = normalize_header(first)
    except ValueError as exc:
        raise PermanentError(str(exc), code="bad_header") from None
    missing = missing_columns(header, const.REQUIRED_COLUMNS)
    if missing:
        delimiter = "tab" if dialect == "excel-tab" else "comma"
        found = sum(1 for name in header if name)
        raise PermanentError(  # the feed's own text is never repeated: it may not be a feed at all
            f"feed header lacks required column(s) {', '.join(missing)} "
            f"(read as {delimiter}-separated; {found} named column(s) found)",
            code="bad_header",
        )
    return header


def delimited_records(reader: CsvReader, width: int) -> Iterator[Record]:
    """The records after the header, each at its first physical line (a quoted field may span lines)."""
    last_line = reader.line_num
    delimiter = reader.dialect.delimiter
    while True:
        try:
            for record in reader:
                start, last_line = last_line + 1, reader.line_num
                if last_line > start and (problem := _open_quote(record, width, delimiter, start, last_line)):
                    yield start, None, problem
                    continue
                if len(record) != width:
                    if not record:
                        continue
                    problem = _excess_fields(record, width)
                    if problem:
                        yield start, None, problem
                        continue
                yield start, record, None
            return
        except csv.Error as exc:
            start, last_line = last_line + 1, max(reader.line_num, last_line + 1)
            yield start, None, f"unreadable row: {exc}"


def _open_quote(record: list[str], width: int, delimiter: str, start: int, end: int) -> str | None:
    """Why a record read over lines `start`..`end` looks like a quote left open that swallowed the rows after
    it: a line inside one of its fields holds as many delimiters as a row (a real multi-line text rarely does)."""
    row_like = max(width - 1, 1)
    for value in record:
        if any(line.count(delimiter) >= row_like for line in value.split("\n")[1:]):
            return (
                f"unclosed quote: a quoted field opened on line {start} runs on to line {end}, "
                f"swallowing the {end - start} line(s) after it as text"
            )
    return None


def _excess_fields(record: list[str], width: int) -> str | None:
    """Why a record is refused for having more fields than the header (only blank ones past it are fine)."""
    if len(record) > width and any(value.strip() for value in record[width:]):
        return f"row has {len(record)} fields but the header has {width}"
    return None


def jsonl_rows(text: IO[str]) -> Iterator[Row]:
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_float=Decimal)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            yield line_number, None, f"invalid JSON: {reason}"
            continue
        yield _record_row(line_number, record)


def _record_row(position: int, record: object) -> Row:
    if not isinstance(record, dict):
        return position, None, f"record is a JSON {type(record).__name__}, not an object"
    try:
        return position, normalize_record(record), None
    except ValueError as exc:
        return position, None, str(exc)


class _Prefixed:
    """A binary stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def json_rows(binary: IO[bytes]) -> Iterator[Row]:
    head = binary.read(64)
    head = head.removeprefix(codecs.BOM_UTF8)
    while head and not head.strip():
        more = binary.read(64 * 1024)
        if not more:
            break
        head = more
    head = head.lstrip()
    if not head:
        raise PermanentError("feed is empty: expected a JSON array or an object with items", code="bad_json")
    stream = _Prefixed(head, binary)
    if head.startswith(b"["):
        for index, record in enumerate(ijson.items(stream, "item"), start=1):
            yield _record_row(index, record)
        return
    if not head.startswith(b"{"):
        raise PermanentError("JSON feed must be an array or an object with an items array", code="bad_json")
    state = {"items": False}

    def watch(events: Iterator[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        for event in events:
            if event[0] == "items" and event[1] == "start_array":
                state["items"] = True
            yield event

    for index, record in enumerate(ijson.items(watch(ijson.parse(stream)), "items.item"), start=1):
        yield _record_row(index, record)
    if not state["items"]:
        raise PermanentError("JSON feed object has no items array", code="bad_json")
