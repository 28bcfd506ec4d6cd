"""The `storelink bench` commands, one per benchmark, with their options; `connector.cli.bench` wires them."""

from __future__ import annotations

import json
from typing import Any

import click

from connector.cli.common import console


def _reachable_postgresql(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """`--database-url`: empty (a fresh SQLite file), or a PostgreSQL URL that answers, checked before the
    bench starts anything (one line naming the cause, exit 2, when it does not)."""
    if not value:
        return ""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import ArgumentError

    from connector.infra import preflight

    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError:
        raise click.BadParameter(f"{value!r} is not a database URL (postgresql://USER@HOST/DB)") from None
    if backend != "postgresql":
        raise click.BadParameter(f"benches run on PostgreSQL here, not {backend} (omit it for SQLite)")
    engine = create_engine(value, connect_args={"connect_timeout": 5})
    try:
        with preflight.database_errors(engine, "--database-url"), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except preflight.StartupError as exc:
        raise click.BadParameter(exc.message) from None
    finally:
        engine.dispose()
    return value


def database_url_option(command: Any) -> Any:
    return click.option(
        "--database-url",
        default="",
        callback=_reachable_postgresql,
        help="PostgreSQL database to measure on, in a fresh schema of its own (default: a fresh SQLite file).",
    )(command)


@click.command("feed-sync")
@click.option("--rows", default=100_000, show_default=True, help="Feed rows to generate and sync.")
@database_url_option
@click.option(
    "--repeat", default=3, show_default=True, type=click.IntRange(1, 20), help="Rounds; fastest counts."
)
def bench_feed_sync(rows: int, database_url: str, repeat: int) -> None:
    """Catalog sync of a generated feed against a bare stream-parse + bulk-insert baseline."""
    from connector.bench.feed_sync import run

    result = run(rows=rows, database_url=database_url or None, console=console, repeat=repeat)
    click.echo(json.dumps(result))


@click.command("webhooks")
@click.option(
    "--seconds", default=5.0, show_default=True, type=click.FloatRange(1, 120), help="Length of each run."
)
@click.option(
    "--rate", default=200, show_default=True, type=click.IntRange(1, 5000), help="(c) webhooks per second."
)
@click.option(
    "--events",
    default=30_000,
    show_default=True,
    type=click.IntRange(1000, 1_000_000),
    help="(b) deliveries drained.",
)
@database_url_option
def bench_webhooks(seconds: float, rate: int, events: int, database_url: str) -> None:
    """Inbound acceptance, batched processing and store-to-platform latency against bare baselines."""
    from connector.bench.webhooks import run

    result = run(
        database_url=database_url or None, console=console, seconds=seconds, rate=rate, events=events
    )
    click.echo(json.dumps(result))


@click.command("shopify")
@click.option("--orders", default=100, show_default=True, type=click.IntRange(10, 10_000), help="(a) orders.")
@click.option(
    "--variants",
    default=100_000,
    show_default=True,
    type=click.IntRange(1000, 1_000_000),
    help="(b) variants.",
)
@click.option(
    "--restore-rate", default=50.0, show_default=True, help="(a) emulator bucket restore rate, points/s."
)
@click.option("--bucket", default=1000.0, show_default=True, help="(a) emulator bucket size, points.")
@database_url_option
def bench_shopify(orders: int, variants: int, restore_rate: float, bucket: float, database_url: str) -> None:
    """Order push against the emulator's cost throttle, and a bulk catalog sync against the feed baseline."""
    from connector.bench.shopify import run

    result = run(
        orders=orders,
        variants=variants,
        restore_rate=restore_rate,
        bucket=bucket,
        database_url=database_url or None,
        console=console,
    )
    click.echo(json.dumps(result))


@click.command("flash-sale")
@click.option(
    "--buyers", default=200, show_default=True, type=click.IntRange(1, 2000), help="Concurrent buyers."
)
@click.option(
    "--attempts",
    default=20_000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Purchase attempts.",
)
@click.option(
    "--allocation", default=1_000, show_default=True, type=click.IntRange(1, 1_000_000), help="Units pinned."
)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(0, 1_000_000), help="Per buyer.")
@click.option("--push-during-sale", is_flag=True, help="Run the push workers during the burst, not after.")
@database_url_option
def bench_flash_sale(
    buyers: int, attempts: int, allocation: int, limit: int, push_during_sale: bool, database_url: str
) -> None:
    """A live pin sold out by concurrent buyers through gunicorn against a bare Lua endpoint."""
    from connector.bench.flash_sale import run

    result = run(
        database_url=database_url or None,
        console=console,
        buyers=buyers,
        attempts=attempts,
        allocation=allocation,
        limit=limit,
        push_during_sale=push_during_sale,
    )
    click.echo(json.dumps(result))


@click.command("clicks")
@click.option(
    "--requests",
    "requests_count",
    default=20_000,
    show_default=True,
    type=click.IntRange(100, 1_000_000),
    help="Link visits sent (each server).",
)
@click.option(
    "--links", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Creators' links."
)
@click.option(
    "--concurrency",
    default=16,
    show_default=True,
    type=click.IntRange(1, 500),
    help="Connections in flight per visitor process (2 processes).",
)
@database_url_option
def bench_clicks(requests_count: int, links: int, concurrency: int, database_url: str) -> None:
    """Link redirects (`GET /l/{code}`) by concurrent visitors through gunicorn against a bare Flask redirect."""
    from connector.bench.clicks import run

    result = run(
        database_url=database_url or None,
        console=console,
        requests_count=requests_count,
        links=links,
        concurrency=concurrency,
    )
    click.echo(json.dumps(result))


@click.command("showcase")
@click.option("--items", default=200, show_default=True, type=click.IntRange(1, 500), help="Showcase items.")
@click.option(
    "--share",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Items changed per second.",
)
@click.option("--seconds", default=10.0, show_default=True, type=click.FloatRange(1, 300), help="Each run.")
@click.option("--readers", default=8, show_default=True, type=click.IntRange(1, 256), help="Per process.")
@database_url_option
def bench_showcase(items: int, share: float, seconds: float, readers: int, database_url: str) -> None:
    """Showcase reads through gunicorn while stock webhooks change items, against precomputed JSON."""
    from connector.bench.showcase import run

    result = run(
        database_url=database_url or None,
        console=console,
        items=items,
        share=share,
        seconds=seconds,
        concurrency=readers,
    )
    click.echo(json.dumps(result))


@click.command("scale")
@click.option("--quick", is_flag=True, help="Small sizes throughout (seconds, for tests); not the targets'.")
@database_url_option
@click.option(
    "--only",
    type=click.Choice(["all", "intake"]),
    default="all",
    show_default=True,
    help="Measure every part, or the webhook intake over many merchants alone.",
)
def bench_scale(quick: bool, database_url: str, only: str) -> None:
    """Cost as work grows: sync of 10k to 1M variants, 1,000 merchants' webhooks, 100 endpoints, fairness."""
    from connector.bench.scale import run

    result = run(database_url=database_url or None, console=console, quick=quick, only=only)
    click.echo(json.dumps(result))


COMMANDS: tuple[click.Command, ...] = (
    bench_feed_sync,
    bench_webhooks,
    bench_shopify,
    bench_flash_sale,
    bench_clicks,
    bench_showcase,
    bench_scale,
)
