"""`storelink inbound`: store webhooks as received, listed and replayed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import click

from connector.cli.common import Context, _errors, _print_rows, console, pass_ctx
from connector.merchants.records import get_merchant

logger = logging.getLogger(__name__)


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.group()
def inbound() -> None:
    """Store webhooks as received: list them and replay them."""


@inbound.command("list")
@click.argument("merchant")
@click.option("--status", type=click.Choice(["pending", "processed", "skipped", "failed"]), default=None)
@click.option("--topic", default=None, help="Only this topic.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def inbound_list(
    obj: Context, merchant: str, status: str | None, topic: str | None, limit: int, as_json: bool
) -> None:
    """A merchant's stored deliveries, newest first, with what processing made of them."""
    from webhooks.inbound import drain

    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        rows: list[dict[str, Any]] = [
            {
                "id": e.id,
                "delivery_id": e.dedupe_key,
                "topic": e.topic,
                "triggered_at": e.triggered_at.isoformat() if e.triggered_at else None,
                "received_at": e.received_at.isoformat(),
                "status": e.status,
                "note": e.error,
            }
            for e in drain.list_events(session, m.id, status=status, topic=topic, limit=limit)
        ]
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("delivery", "delivery_id"),
            ("topic", "topic"),
            ("store time", "triggered_at"),
            ("received", "received_at"),
            ("status", "status"),
            ("note", "note"),
        ],
        empty="no store webhooks found",
    )


@inbound.command("replay")
@click.argument("merchant")
@click.option("--since", default=None, help="Received at or after this ISO 8601 time.")
@click.option("--until", default=None, help="Received before this ISO 8601 time.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["processed", "skipped", "failed"]),
    help="Replay deliveries in this state (repeatable; default failed).",
)
@click.option("--topic", default=None, help="Only this topic.")
@pass_ctx
def inbound_replay(
    obj: Context,
    merchant: str,
    since: str | None,
    until: str | None,
    statuses: tuple[str, ...],
    topic: str | None,
) -> None:
    """Process stored deliveries again. Changes the stored state already has are skipped as stale."""
    from webhooks.inbound import drain, scheduling

    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("must be later than --since", param_hint="--until")
    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        merchant_id = m.id
        replayed = drain.replay(
            session, merchant_id, since=start, until=end, statuses=statuses or (drain.FAILED,), topic=topic
        )
    if replayed:
        scheduling.clear(rt.redis, merchant_id)  # a stale wake-up flag must not hold the replay back
        scheduling.signal(rt.redis, merchant_id, ttl=rt.settings.worker_lock_seconds)
    console.print(f"replayed {len(replayed)} inbound deliver{'y' if len(replayed) == 1 else 'ies'}")
