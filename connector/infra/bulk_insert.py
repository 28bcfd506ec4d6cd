"""Bulk inserts for hot paths: values run through the columns' own bind processors once per column, then
PostgreSQL's COPY (psycopg) or a Core INSERT compiled once and the driver's executemany (other
databases), without SQLAlchemy's per-row parameter machinery.

Used where one transaction writes thousands of rows (catalog sync, event fan-out). Values are encoded
exactly as SQLAlchemy would encode them (each column type's `bind_processor` for the connection's
dialect), so rows written here read back through the ORM like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.orm import QueryableAttribute

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    processors: list[tuple[str, Processor | None]]
    positional: bool


_cache: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


def _plan(conn: Connection, table: Table, columns: tuple[str, ...]) -> _Plan:
    key = (conn.dialect.name, table.name, columns)
    cached = _cache.get(key)
    if cached is None:
        dialect = conn.dialect
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        positional = bool(compiled.positional)
        order = list(compiled.positiontup or []) if positional else list(compiled.params)
        processors: list[tuple[str, Processor | None]] = [
            (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in order
        ]
        cached = _cache[key] = _Plan(str(compiled), processors, positional)
    return cached


@dataclass(frozen=True, slots=True)
class Prepared:
    """One statement compiled for a dialect, with each parameter's bind processor, to be run many times with
    the driver's own parameters: the compile cache, parameter and type machinery of a Core execution are paid
    once instead of on every call."""

    sql: str
    processors: list[tuple[str, Processor | None]]
    positional: bool

    def params(self, values: dict[str, Any]) -> Any:
        """The driver parameters for `values` (every bound column's value, by name)."""
        encoded = [(name, proc(values[name]) if proc else values[name]) for name, proc in self.processors]
        if self.positional:
            return tuple(value for _, value in encoded)
        return dict(encoded)


def prepare(dialect: Any, table: Table, statement: Any, columns: Sequence[str]) -> Prepared:
    """Compile `statement` (an INSERT into `table` of `columns`, with whatever ON CONFLICT or RETURNING it
    has) for `dialect`, with the bind processor of each parameter's column."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    positional = bool(compiled.positional)
    order = list(compiled.positiontup or []) if positional else list(compiled.params)
    processors = [(name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in order]
    return Prepared(str(compiled), processors, positional)


def _encode(values: list[Any], proc: Processor | None) -> list[Any]:
    """Run one column's values through its processor; repeated values (timestamps of a batch, currencies,
    statuses) are encoded once."""
    if proc is None:
        return values
    memo: dict[Any, Any] = {}
    out = []
    for value in values:
        try:
            encoded = memo[value]
        except KeyError:
            encoded = memo[value] = proc(value)
        except TypeError:  # unhashable (JSON documents)
            encoded = proc(value)
        out.append(encoded)
    return out


def insert_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) in one executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    plan = _plan(conn, table, columns)
    processors = plan.processors
    missing = [name for name, _ in processors if name not in rows[0]]
    if missing:  # columns with defaults are part of the statement: callers give every value
        raise ValueError(f"bulk insert into {table.name} lacks values for {', '.join(missing)}")
    columns_out = [_encode(list(map(itemgetter(name), rows)), proc) for name, proc in processors]
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, [name for name, _ in processors], columns_out)
        return
    params: list[Any]
    if plan.positional:
        params = list(zip(*columns_out, strict=True))
    else:
        names = [name for name, _ in processors]
        params = [dict(zip(names, values, strict=True)) for values in zip(*columns_out, strict=True)]
    conn.exec_driver_sql(plan.sql, params)


def _copy(conn: Connection, table: Table, names: list[str], columns: list[list[Any]]) -> None:
    """PostgreSQL: COPY FROM STDIN on the connection's own transaction, the server's fastest bulk load."""
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(name) for name in names)
    target = conn.dialect.identifier_preparer.format_table(table)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {target} ({quoted}) FROM STDIN") as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)
    finally:
        cursor.close()


def in_values(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`column IN (values)` bound as one parameter (a PostgreSQL array, a JSON array on SQLite), so a
    thousand-id lookup compiles and binds once instead of a thousand times."""
    return _in_one_parameter(dialect, column, None, value=param_values(dialect, values))


def in_param(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], key: str
) -> ColumnElement[bool]:
    """`in_values` with the values bound at execution under `key` (as `param_values` encodes them): a
    statement built once around it is not built again, nor its cache key computed, per execution."""
    return _in_one_parameter(dialect, column, key)


def _in_one_parameter(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], key: str | None, **value: Any
) -> ColumnElement[bool]:
    """`column IN` one parameter `key`, bound now when `value` is given, else at execution."""
    if dialect == "postgresql":
        return column == any_(bindparam(key, type_=ARRAY(column.type), **value))
    if dialect == "sqlite":
        doc = bindparam(key, type_=String(), **value)
        return column.in_(select(literal_column("value")).select_from(func.json_each(doc)))
    return column.in_(bindparam(key, expanding=True, **value))


def param_values(dialect: str, values: Sequence[Any]) -> Any:
    """The parameter value of an `in_param` for `values`."""
    if dialect == "sqlite":
        return orjson.dumps(list(values)).decode()
    return list(values)
