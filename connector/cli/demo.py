"""`storelink demo`: a generated feed synced end to end through a real worker, in a data directory of its own."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import click

from config.settings import SettingsError, load_settings
from connector.catalog import syncs
from connector.cli.common import Context, _errors, console, pass_ctx
from connector.cli.resync import _summary
from connector.merchants.records import create_merchant, find_merchant

logger = logging.getLogger(__name__)


def _demo_settings(obj: Context, data_dir: Path | None) -> Path:
    """Point this invocation at the demo's own data directory: its SQLite file, key, feed and a private
    Redis there (DATABASE_URL, REDIS_URL and SECRET_KEYS are not used). Without `data_dir`, a temporary
    directory removed when the demo ends."""
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="storelink-demo-"))
        obj._stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
    try:
        obj._settings = load_settings(
            data_dir=data_dir, database_url="", redis_url="", secret_keys="", feed_allow_files=True
        )  # the demo feed is a file
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return data_dir


@click.command()
@click.option("--rows", default=5000, show_default=True, type=click.IntRange(1, 5_000_000), help="Feed rows.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's database, key and feed here (default: a temporary directory, removed at the end).",
)
@pass_ctx
def demo(obj: Context, rows: int, data_dir: Path | None) -> None:
    """Connect a generated product feed, sync it through a real worker, change it, and sync again.

    The demo keeps everything in a data directory of its own, never in DATA_DIR, DATABASE_URL or REDIS_URL."""
    from connector.sandbox.feeds import write_feed
    from connector.worker import build_worker

    kept = data_dir is not None
    data_dir = _demo_settings(obj, data_dir)
    rt = obj.rt
    feed = write_feed(data_dir / "demo" / "feed.csv", rows)
    console.print(f"[bold]1.[/] generated a {rows:,}-row product feed at {feed}")
    with _errors(), rt.db.session() as session:
        existing = find_merchant(session, "demo-feed")
        merchant_id = (
            existing.id
            if existing
            else create_merchant(
                session, rt.secrets, kind="feed", name="demo-feed", config={"url": str(feed)}
            ).id
        )
    first = "full sync of the demo merchant from an earlier run" if existing else "first full sync"
    worker = build_worker(rt)
    for step, label in ((2, first), (3, "resync of the unchanged feed")):
        with _errors():
            run = syncs.request_sync(rt, merchant_id)
        console.print(f"[bold]{step}.[/] {label}: run {run.id}")
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        console.print(_summary(syncs.get_run(rt, run.id)))
    write_feed(feed, rows, price_shift=1, changed_every=10)
    with _errors():
        run = syncs.request_sync(rt, merchant_id)
    console.print(f"[bold]4.[/] one row in ten repriced, resync: run {run.id}")
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    final = syncs.get_run(rt, run.id)
    console.print(_summary(final))
    if final.status != "succeeded":
        raise click.ClickException(f"demo sync failed: {final.error}")
    if kept:
        console.print(
            f"Run [bold]DATA_DIR={data_dir} storelink up[/] to serve the demo's data "
            "(/healthz, /readyz, /metrics) with workers."
        )
    else:
        console.print(
            "The demo's data is removed now; keep it with [bold]storelink demo --data-dir DIR[/], "
            "then serve it with [bold]DATA_DIR=DIR storelink up[/]."
        )
