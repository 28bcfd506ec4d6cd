"""The one way the Platform API writes a moment, and the Walmart-specific forms that differ from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from adapters.walmart import orders as walmart_orders
from connector.domain.timestamps import iso
from connector.live import sessions
from connector.orders import queries
from connector.sandbox.walmart import wire as walmart_emulator_wire
from webhooks import api as webhook_api


def test_api_timestamps_keep_the_stored_offset_and_none() -> None:
    assert iso(None) is None
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05+00:00"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 600)) == "2026-01-02T03:04:05.000600"
    plus_two = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two)) == "2026-01-02T03:04:05+02:00"


def test_api_modules_share_the_helper() -> None:
    for module in (queries, sessions, webhook_api):
        assert not hasattr(module, "_iso"), module.__name__
        assert module.iso is iso  # type: ignore[attr-defined]


def test_walmart_forms_are_their_own() -> None:
    moment = datetime(2026, 1, 2, 5, 4, 5, 600, tzinfo=timezone(timedelta(hours=2)))
    assert walmart_orders._walmart_time(moment) == "2026-01-02T03:04:05Z"
    assert walmart_emulator_wire.iso_from_ms(1_767_323_045_123) == "2026-01-02T03:04:05.123Z"
