"""`storelink demo`: the command, its options, and the order of the steps (`connector.cli.demo` wires it)."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import click
from rich.console import Console

from connector.cli.common import Context, console, pass_ctx
from connector.demo import creators, live, orders, services, serving, stores, summary
from connector.demo.services import Sizes
from connector.demo.stage import Stage
from connector.demo.steps import StepFailedError, step
from connector.infra import logs, preflight

logger = logging.getLogger(__name__)

Action = Callable[[Stage], str]

STEPS: Final[tuple[tuple[str, Action], ...]] = (
    ("platform client and webhook endpoint", stores.platform_client),
    ("install the Shopify shop through OAuth", stores.install_shopify),
    ("connect the Walmart seller with its keys", stores.connect_walmart),
    ("connect the product feed", stores.connect_feed),
    ("sync the three catalogs", stores.wait_for_syncs),
    ("commission programs, creators' links and clicks", creators.programs_and_links),
    ("brand and creator showcases", creators.showcases),
    ("live flash sale", live.flash_sale),
    ("orders through creators' links", orders.linked_orders),
    ("orders pushed to the stores", orders.wait_for_pushes),
    ("fulfilments and a refund in the stores", orders.fulfil_and_refund),
    ("commission approved and paid", orders.approve_and_pay),
    ("webhooks delivered to the platform", summary.wait_for_deliveries),
)


@dataclass
class _DataDir:
    """The demo's data directory, and whether it is removed at the end (a temporary one, unless a step
    failed: its logs are kept then)."""

    path: Path
    temporary: bool

    def remove(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def _data_dir(stack: contextlib.ExitStack, given: Path | None) -> _DataDir:
    """The directory given, else a temporary one removed when everything else has stopped."""
    if given is not None:
        return _DataDir(given.expanduser().resolve(), temporary=False)
    found = _DataDir(Path(tempfile.mkdtemp(prefix="storelink-demo-")), temporary=True)
    stack.callback(found.remove)
    return found


def _log_to_file(stack: contextlib.ExitStack, data_dir: Path) -> Path:
    path = data_dir / "demo" / "logs" / "demo.log"
    handle: IO[str] = stack.enter_context(path.open("a", encoding="utf-8"))
    logs.configure("INFO", json_output=True, stream=handle)
    stack.callback(logs.configure, "WARNING", False)
    return path


def _start(
    stack: contextlib.ExitStack, out: Console, sizes: Sizes, data_dir: Path, port: int | None
) -> Stage:
    started = time.monotonic()
    with step(out, 1, "start Redis, the database, the store emulators and storelink up") as outcome:
        services.prepare_data_dir(data_dir)
        _log_to_file(stack, data_dir)
        redis_url = services.start_redis(stack, data_dir)
        emulators = services.start_emulators(stack)
        web_port = port or preflight.free_loopback_port()
        env = services.service_env(data_dir, redis_url, web_port, emulators)
        rt = services.start_runtime(stack, env)
        up = services.start_up(stack, env, data_dir / "demo" / "logs" / "up.log")
        services.seed_emulators(emulators, sizes)  # while `storelink up` starts
        up.wait_ready()
        outcome.note(f"web {up.url}, Shopify {emulators.shopify.url}, Walmart {emulators.walmart.url}")
    return Stage(out, sizes, data_dir, rt, emulators, up, started)


def run(
    stack: contextlib.ExitStack,
    out: Console,
    sizes: Sizes,
    data_dir: Path,
    port: int | None,
    *,
    serve: bool,
) -> tuple[Stage, dict[str, Any]]:
    """Every step in order, then the figures read back (printed as tables); StepFailedError at the first
    step that fails. Unless the demo goes on serving, `storelink up` is stopped before the database is read."""
    stage = _start(stack, out, sizes, data_dir, port)
    for number, (title, action) in enumerate(STEPS, start=2):
        with step(out, number, title) as outcome:
            outcome.note(action(stage))
    with step(out, len(STEPS) + 2, "read the figures back"):
        figures, tables = summary.collect(stage, freeze=not serve)
    for table in tables:
        out.print(table)
    return stage, figures


def _sizes(**given: int | None) -> Sizes:
    return Sizes(**{name: value for name, value in given.items() if value is not None})


@click.command()
@click.option("--no-serve", is_flag=True, help="Exit after the summary instead of serving until Ctrl-C.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's database, key and logs here (new or empty; default: a temporary directory, removed).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Web port (default: a free one).")
@click.option(
    "--shopify-products", type=click.IntRange(5, 100_000), default=None, help="Shopify products [2000]."
)
@click.option("--walmart-items", type=click.IntRange(5, 100_000), default=None, help="Walmart items [1000].")
@click.option("--feed-products", type=click.IntRange(1, 100_000), default=None, help="Feed products [500].")
@click.option("--creators", type=click.IntRange(1, 20), default=None, help="Creators [3].")
@click.option("--buyers", type=click.IntRange(1, 5_000), default=None, help="Flash-sale buyers [300].")
@click.option("--allocation", type=click.IntRange(1, 5_000), default=None, help="Flash-sale units [200].")
@click.option("--orders", type=click.IntRange(1, 2_000), default=None, help="Orders through links [50].")
@pass_ctx
def demo(
    obj: Context,
    no_serve: bool,
    data_dir: Path | None,
    port: int | None,
    **sizes: int | None,
) -> None:
    """Show the whole product working: stores installed and synced, creators' links, a live flash sale,
    orders pushed, fulfilled and refunded in the stores, commission approved and paid, webhooks delivered.

    Everything runs on this machine against the store emulators, in a data directory of its own (no
    DATABASE_URL, REDIS_URL or other setting is read)."""
    stack = obj._stack
    logs.configure("CRITICAL", json_output=False)  # nothing on the terminal but the steps; a log file soon
    where = _data_dir(stack, data_dir)
    try:
        stage, figures = run(stack, console, _sizes(**sizes), where.path, port, serve=not no_serve)
    except StepFailedError as exc:
        kept = f" (logs kept in {where.path / 'demo' / 'logs'})" if where.temporary else ""
        where.temporary = False
        raise click.ClickException(f"{exc}{kept}") from None
    if no_serve:
        click.echo(json.dumps(figures))
        return
    try:
        serving.serve(stage, kept=not where.temporary)
    except services.ServiceError as exc:
        raise click.ClickException(str(exc)) from None
