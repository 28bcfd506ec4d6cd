"""Planner statistics (of the columns the sync's lookups use; a column misnamed fails the ANALYZE, and the count
would not move) are refreshed on PostgreSQL each time a sync's created rows double, never on SQLite."""

from __future__ import annotations

from sqlalchemy import text

from connector.catalog.statistics import COLUMNS, Analyzer
from connector.infra import runtime


def _analyzed(rt: runtime.Runtime) -> dict[str, int]:
    with rt.db.engine.connect() as conn:
        return {
            name: count
            for name, count in conn.execute(
                text(
                    "SELECT relname, analyze_count FROM pg_stat_user_tables "
                    "WHERE schemaname = current_schema() AND relname IN ('products', 'variants', 'inventory_levels')"
                )
            )
        }


def test_statistics_are_refreshed_when_the_created_rows_double(rt: runtime.Runtime) -> None:
    analyzer = Analyzer(rt.db, first=100)
    if rt.db.engine.dialect.name != "postgresql":
        assert not analyzer.enabled
        analyzer.created(1_000)  # nothing to run, nothing raised
        return
    before = _analyzed(rt)
    analyzer.created(99)
    assert _analyzed(rt) == before and analyzer.next_at == 100
    analyzer.created(150)
    after = _analyzed(rt)
    assert analyzer.next_at == 300
    assert all(after[table] == before.get(table, 0) + 1 for table in COLUMNS)
    analyzer.created(299)
    assert _analyzed(rt) == after
