"""`storelink webhooks`, `deliveries` and `replay`: the platform's webhook endpoints and their deliveries."""

from __future__ import annotations

import logging
from typing import Any

import click

from connector.cli.common import Context, _errors, _print_rows, console, pass_ctx

logger = logging.getLogger(__name__)


@click.group()
def webhooks() -> None:
    """Webhook endpoints of the platform: where Storelink's signed events go."""


@webhooks.command("add")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, help="Event type or prefix (order.*); default all.")
@pass_ctx
def webhooks_add(obj: Context, url: str, event_types: tuple[str, ...]) -> None:
    """Register an endpoint; its signing secret is printed once."""
    from webhooks.outbound import endpoints

    rt = obj.rt
    with _errors(), rt.db.session() as session:
        created = endpoints.create_endpoint(
            session,
            rt.secrets,
            url=url,
            event_types=event_types or ("*",),
            allow_private=obj.settings.webhook_allow_private_urls,
        )
        endpoint_id = created.endpoint.id
    console.print(
        f"endpoint {endpoint_id} added; signing secret (shown once): {created.secret}", highlight=False
    )


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def webhooks_list(obj: Context, as_json: bool) -> None:
    """List endpoints with their state."""
    from webhooks.outbound import endpoints

    rt = obj.rt
    with rt.db.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": e.id,
                "url": e.url,
                "event_types": e.event_types,
                "enabled": e.enabled,
                "disabled_reason": e.disabled_reason,
                "consecutive_failures": e.consecutive_failures,
            }
            for e in endpoints.list_endpoints(session)
        ]
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("url", "url"),
            ("events", "event_types"),
            ("enabled", "enabled"),
            ("failures", "consecutive_failures"),
            ("disabled because", "disabled_reason"),
        ],
    )


@webhooks.command("rotate")
@click.argument("endpoint_id", type=int)
@click.option("--grace-hours", default=24.0, show_default=True, help="Hours the old secret still signs.")
@pass_ctx
def webhooks_rotate(obj: Context, endpoint_id: int, grace_hours: float) -> None:
    """New signing secret (printed once); both are sent during the grace period."""
    from datetime import timedelta

    from webhooks.outbound import endpoints

    rt = obj.rt
    with _errors(), rt.db.session() as session:
        rotated = endpoints.rotate_secret(
            session, rt.secrets, endpoint_id, grace=timedelta(hours=grace_hours)
        )
    console.print(f"new signing secret (shown once): {rotated.secret}", highlight=False)


@webhooks.command("enable")
@click.argument("endpoint_id", type=int)
@pass_ctx
def webhooks_enable(obj: Context, endpoint_id: int) -> None:
    """Enable an endpoint (e.g. after it answered 410)."""
    from webhooks.outbound import endpoints

    with _errors(), obj.rt.db.session() as session:
        endpoints.update_endpoint(
            session, endpoint_id, enabled=True, allow_private=obj.settings.webhook_allow_private_urls
        )
    console.print(f"endpoint {endpoint_id} enabled")


@click.command()
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]), default=None)
@click.option("--endpoint", "endpoint_id", type=int, default=None)
@click.option("--event-type", default=None, help="Only deliveries of this event type (order.confirmed).")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def deliveries(
    obj: Context,
    status: str | None,
    endpoint_id: int | None,
    event_type: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List webhook deliveries, newest first."""
    from webhooks.outbound import delivery

    rt = obj.rt
    with rt.db.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": d.id,
                "event": d.payload_id,
                "type": t,
                "endpoint": d.endpoint_id,
                "status": d.status,
                "attempts": d.attempt_count,
                "last_status": d.last_status_code,
                "error": d.last_error,
            }
            for d, t in delivery.list_deliveries(
                session, status=status, endpoint_id=endpoint_id, event_type=event_type, limit=limit
            )
        ]
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("type", "type"),
            ("endpoint", "endpoint"),
            ("status", "status"),
            ("attempts", "attempts"),
            ("last status", "last_status"),
            ("error", "error"),
        ],
        empty="no webhook deliveries found",
    )


@click.command()
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--failed", "all_failed", is_flag=True, help="Replay every failed delivery.")
@click.option(
    "--endpoint", "endpoint_id", type=int, default=None, help="With --failed: only this endpoint's."
)
@pass_ctx
def replay(obj: Context, delivery_ids: tuple[int, ...], all_failed: bool, endpoint_id: int | None) -> None:
    """Send failed deliveries again (their attempt history is kept)."""
    from webhooks.outbound import delivery

    if not delivery_ids and not all_failed:
        raise click.UsageError("give DELIVERY_IDS or --failed")
    rt = obj.rt
    with rt.db.session() as session:
        if all_failed:
            replayed = delivery.replay_failed(session, endpoint_id=endpoint_id)
        else:
            replayed = delivery.replay(session, delivery_ids)
    missing = sorted(set(delivery_ids) - set(replayed))
    console.print(f"replayed {len(replayed)} deliver{'y' if len(replayed) == 1 else 'ies'}")
    if missing:
        raise click.ClickException(f"not failed deliveries: {', '.join(map(str, missing))}")
