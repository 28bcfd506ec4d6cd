"""CLI composition root: `storelink` commands for running, operating and supporting the service."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

import config
from config.settings import Settings, SettingsError, load_settings
from connector import connect, logs, migrate, preflight, registry, runtime, syncs
from connector import merchants as merchants_core
from connector.crypto import SecretBox
from connector.db import Database
from connector.errors import StorelinkError
from connector.merchants import create_merchant, get_merchant, rotate_credentials
from connector.models import Merchant, SyncRun
from connector.ports import ConnectFlow, ConnectOption

logger = logging.getLogger(__name__)

PIPE_WIDTH = 100_000
"""Columns of output that goes to a pipe or a file: wide enough that no line wraps and no cell is cut."""


class _Output(Console):
    """A console the width of the terminal it writes to; elsewhere (a pipe, a file) never wrapping or cutting,
    so that a table's rows stay one line each and URLs stay whole for grep and scripts."""

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = Console.size.fget(self)  # type: ignore[attr-defined]
        return dimensions if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _Output(stderr=False)
err = _Output(stderr=True)

TERMINAL = ("succeeded", "failed")


class Context:
    """Lazily resolved settings and runtime for one CLI invocation."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._rt: runtime.Runtime | None = None
        self._stack = contextlib.ExitStack()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def rt(self) -> runtime.Runtime:
        if self._rt is None:
            with _startup_errors():
                if self.settings.redis_url:
                    preflight.check_redis(self.settings.redis_url)
                url = resolve_cli_redis(self.settings, self._stack)
                self._rt = runtime.install(runtime.Runtime(settings=self.settings, redis_url=url))
                with preflight.database_errors(self._rt.db.engine):
                    migrate.upgrade(self._rt.db.engine)
        return self._rt

    def close(self) -> None:
        if self._rt is not None:
            self._rt.close()
        self._stack.close()


def run_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / "redis.url"


def resolve_cli_redis(settings: Settings, stack: contextlib.ExitStack) -> str:
    """REDIS_URL; else the private Redis of a running `storelink up`; else a private one for this command.

    Work recorded by a command that had to start its own Redis is not lost when that Redis stops: the
    database holds it and the scheduler's sweep enqueues it again once `storelink up` runs.
    """
    if settings.redis_url:
        return settings.redis_url
    from redis import Redis

    path = run_file(settings)
    if path.exists():
        url = path.read_text().strip()
        with contextlib.suppress(Exception):
            Redis.from_url(url, socket_connect_timeout=0.5).ping()
            return url
    from connector.embedded import EmbeddedRedis

    private = Path(tempfile.mkdtemp(prefix="storelink-redis-"))
    stack.callback(shutil.rmtree, private, ignore_errors=True)
    server = EmbeddedRedis(private)
    url = server.start()
    stack.callback(server.stop)
    return url


pass_ctx = click.make_pass_decorator(Context)


@contextlib.contextmanager
def _startup_errors() -> Iterator[None]:
    """A command that cannot start (port, lock, database, Redis) exits with the one-line cause."""
    from connector.embedded import EmbeddedRedisError

    try:
        yield
    except (preflight.StartupError, EmbeddedRedisError) as exc:
        raise click.ClickException(str(exc)) from None


def _print_rows(
    rows: list[dict[str, Any]], as_json: bool, columns: list[tuple[str, str]], empty: str = "nothing to list"
) -> None:
    """Rows as one JSON array (`--json`) or as a table of the given (header, key) columns; no rows, `empty`."""
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        console.print(empty, highlight=False)
        return
    table = Table(*(header for header, _ in columns))
    for row in rows:
        table.add_row(*(_cell(row[key]) for _, key in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn Storelink's typed errors into clean CLI errors (exit 1, one line, no traceback)."""
    try:
        yield
    except StorelinkError as exc:
        raise click.ClickException(f"{exc.message} [{exc.code}]") from None


# Signals whose default action ends the process without running cleanup; SIGINT already raises
# KeyboardInterrupt. A command ended by one of them stops what it started (a private Redis, its temporary
# folder, the processes of `storelink up`) as on Ctrl-C, then exits with 128 + the signal's number.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    for sig in EXIT_SIGNALS:  # cleanup runs once: a repeated signal does not cut it short
        signal.signal(sig, signal.SIG_IGN)
    logger.info("stopping on a signal", extra={"signal": signal.Signals(signum).name})
    raise SystemExit(128 + signum)


def _exit_cleanly_on_signals(ctx: click.Context) -> None:
    """Install `_exit_on_signal` for EXIT_SIGNALS left at their default; the previous handlers come back
    when the command's context closes (after its cleanup)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = {
        sig: signal.signal(sig, _exit_on_signal)
        for sig in EXIT_SIGNALS
        if signal.getsignal(sig) == signal.SIG_DFL
    }

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    ctx.call_on_close(restore)


@click.group()
@click.version_option(package_name="storelink")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Storelink: connects merchant stores to the short-video and live-shopping platform."""
    obj = Context()
    ctx.obj = obj
    _exit_cleanly_on_signals(ctx)  # closed after obj: its cleanup is not cut short by a second signal
    ctx.call_on_close(obj.close)
    # Operator commands log warnings only, in plain text; the long-running processes reconfigure.
    logs.configure("WARNING", json_output=False)


# --- processes ----------------------------------------------------------------------------------------------


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
@click.option("--queues", default="", help="Comma-separated queues (default: WORKER_QUEUES).")
@pass_ctx
def worker(obj: Context, burst: bool, queues: str) -> None:
    """Run a job worker."""
    from connector.worker import run_worker

    with _startup_errors():
        url = resolve_cli_redis(obj.settings, obj._stack)
    names = [q.strip() for q in queues.split(",") if q.strip()] or None
    try:
        run_worker(obj.settings, url, queue_names=names, burst=burst)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@pass_ctx
def scheduler(obj: Context) -> None:
    """Run the periodic scheduler (sweeps lost work, reconciles)."""
    from connector.scheduler import run_scheduler

    with _startup_errors():
        url = resolve_cli_redis(obj.settings, obj._stack)
    run_scheduler(obj.settings, url)


def _up_redis(obj: Context, settings: Settings) -> str:
    """REDIS_URL once it answers; else this run's private Redis under DATA_DIR, its URL published in the run
    file for the CLI commands run beside it."""
    if settings.redis_url:
        preflight.check_redis(settings.redis_url)
        return settings.redis_url
    from connector.embedded import EmbeddedRedis

    server = EmbeddedRedis(settings.data_dir)
    url = server.start()
    obj._stack.callback(server.stop)
    path = run_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url)
    obj._stack.callback(lambda: path.unlink(missing_ok=True))
    return url


def gunicorn_command(settings: Settings, bind: str) -> list[str]:
    conf = Path(config.__file__).parent / "gunicorn.conf.py"
    return [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", bind, "connector.app:create_app()"]


@main.command()
@click.option("--host", default=None, help="Address to bind (default WEB_HOST).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port to bind (default WEB_PORT).")
@click.option("--workers", "worker_count", default=2, show_default=True, help="Job worker processes.")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduler.")
@pass_ctx
def up(obj: Context, host: str | None, port: int | None, worker_count: int, no_scheduler: bool) -> None:
    """Run web, workers and scheduler together (the Procfile's processes), for development and demos."""
    from connector.supervisor import Supervisor

    settings = obj.settings
    logs.configure(settings.log_level, settings.log_json)
    host, port = host or settings.web_host, port or settings.web_port
    with _startup_errors():
        lock = preflight.InstanceLock(settings.data_dir)
        lock.acquire()
        obj._stack.callback(lock.release)
        preflight.check_port_free(host, port)
        url = _up_redis(obj, settings)
        rt = runtime.install(runtime.Runtime(settings=settings, redis_url=url))
        try:
            with preflight.database_errors(rt.db.engine):
                migrate.upgrade(rt.db.engine)
            _seal_config_secrets(rt.db, rt.secrets)
        finally:
            rt.close()

    metrics_dir = settings.data_dir / "run" / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "DATABASE_URL": settings.effective_database_url,
        "DATA_DIR": str(settings.data_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    bind = f"{host}:{port}"
    sup = Supervisor(env=env)
    # gunicorn listens on a private loopback port behind the buffering front (`connector.front`), which
    # takes each request in whole first: a client sending slowly never holds a gunicorn worker.
    web_port = preflight.free_loopback_port()
    sup.add("web", gunicorn_command(settings, f"127.0.0.1:{web_port}"))
    front = [sys.executable, "-m", "connector.front", "--host", host, "--port", str(port)]
    sup.add("front", [*front, "--upstream-port", str(web_port)])
    for i in range(worker_count):
        sup.add(f"worker.{i + 1}", [sys.executable, "-m", "connector.cli", "worker"])
    if not no_scheduler:
        sup.add("scheduler", [sys.executable, "-m", "connector.cli", "scheduler"])
    err.print(f"storelink up: web on http://{bind}, {worker_count} worker(s), Redis {url}", highlight=False)
    if sup.run():
        raise click.ClickException("a process kept crashing; stopped everything (see the log above)")


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


@main.command()
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
        existing = session.scalars(select(Merchant).where(Merchant.name == "demo-feed")).first()
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


# --- database and keys ----------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(obj: Context) -> None:
    """Apply migrations up to the newest schema."""
    from connector.db import Database

    database = Database.from_settings(obj.settings)
    migrate.upgrade(database.engine)
    console.print(f"database at revision {migrate.current_revision(database.engine)}")
    moved = _seal_config_secrets(database, SecretBox.from_settings(obj.settings))
    if moved:
        console.print(
            f"{moved} merchant(s): feed URL query strings and credentials moved to encrypted storage"
        )
    database.dispose()


def _seal_config_secrets(database: Database, box: SecretBox) -> int:
    """Merchants stored with secrets in their config (a feed URL's query string) get them moved into their
    encrypted credentials; how many changed."""
    with database.session() as session:
        return merchants_core.seal_config_secrets(session, box)


@main.group()
def keys() -> None:
    """Encryption keys for stored credentials."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key (prepend it to SECRET_KEYS to rotate)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@keys.command("rotate")
@pass_ctx
def keys_rotate(obj: Context) -> None:
    """Re-encrypt every stored credential under the first key in SECRET_KEYS."""
    from connector.db import Database

    database = Database.from_settings(obj.settings)
    migrate.upgrade(database.engine)
    from connector.crypto import SecretBox

    with database.session() as session:
        count = rotate_credentials(session, SecretBox.from_settings(obj.settings))
    console.print(f"re-encrypted {count} credential set(s)")


# --- merchants ------------------------------------------------------------------------------------------------


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out[key.strip()] = value
    return out


@main.group()
def merchants() -> None:
    """Connected stores."""


def _connect_options() -> dict[str, tuple[ConnectOption, list[str]]]:
    """The connect options every installed adapter declares, by flag, with the kinds that declare them."""
    found: dict[str, tuple[ConnectOption, list[str]]] = {}
    for kind in registry.kinds():
        try:
            flow = connect.connect_flow(kind)
        except StorelinkError:
            continue
        for option in flow.connect_options if flow is not None else ():
            found.setdefault(option.flag, (option, []))[1].append(kind)
    return found


def _with_connect_options(command: Any) -> Any:
    """Add the adapters' declared connect options to `merchants add` (a pair `--x/--no-x` is a flag)."""
    for flag, (option, kinds) in reversed(list(_connect_options().items())):
        command = click.option(
            flag,
            option.dest,
            default=None,
            envvar=option.envvar,
            show_envvar=option.envvar is not None,
            help=option.help
            if option.help.startswith(tuple(kinds))
            else f"{', '.join(kinds)}: {option.help}",
        )(command)
    return command


@merchants.command("add")
@click.argument("kind")
@click.option("--name", required=True, help="Merchant name, unique and human-readable.")
@click.option("--url", default=None, help="Store or feed URL (feed: CSV/TSV/JSON URL or path).")
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE", help="Adapter setting (repeatable).")
@click.option("--credential", multiple=True, metavar="KEY=VALUE", help="Credential, stored encrypted.")
@click.option("--buffer", "inventory_buffer", default=0, type=int, help="Units held back from the platform.")
@click.option("--client", "platform_client", default=None, help="Platform client (id or name) it belongs to.")
@_with_connect_options
@click.option("--no-sync", is_flag=True, help="Do not queue the first full sync.")
@pass_ctx
def merchants_add(
    obj: Context,
    kind: str,
    name: str,
    url: str | None,
    settings_: tuple[str, ...],
    credential: tuple[str, ...],
    inventory_buffer: int,
    platform_client: str | None,
    no_sync: bool,
    **connect_values: Any,
) -> None:
    """Connect a store of KIND (installed: see `storelink merchants kinds`) and queue its first sync.

    A kind connected with keys takes the options its adapter declares: the keys are checked with
    the store at once (nothing is stored when it refuses them), what the store says about the seller is
    found, and notifications are subscribed at PUBLIC_URL."""
    cfg: dict[str, Any] = _pairs(settings_, "--set")
    if url:
        cfg["url"] = url
    with _errors():
        try:
            flow = connect.connect_flow(kind)
        except StorelinkError:
            flow = None  # an unknown kind: refused below, as any store it cannot make
    given = {dest: value for dest, value in connect_values.items() if value is not None}
    if flow is not None:
        _add_with_keys(
            obj,
            kind,
            flow,
            name=name,
            given=given,
            cfg=cfg,
            credentials=_pairs(credential, "--credential"),
            inventory_buffer=inventory_buffer,
            platform_client=platform_client,
            no_sync=no_sync,
        )
        return
    used = [
        (flag, kinds)
        for flag, (option, kinds) in _connect_options().items()
        if option.envvar is None and option.dest in given
    ]
    if used:
        owners = sorted({owner for _, kinds in used for owner in kinds})
        flags = ", ".join(flag for flag, _ in used)
        raise click.UsageError(f"{flags}: {', '.join(owners)} options, not for {kind}")
    rt = obj.rt
    with _errors():
        with rt.db.session() as session:
            owner = _platform_client_id(session, platform_client)
            merchant = create_merchant(
                session,
                rt.secrets,
                kind=kind,
                name=name,
                config=cfg,
                credentials=_pairs(credential, "--credential"),
                inventory_buffer=inventory_buffer,
                platform_client_id=owner,
            )
            merchant_id = merchant.id
        console.print(f"merchant {merchant_id} ({name}, {kind}) added")
        if not no_sync:
            run = syncs.request_sync(rt, merchant_id)
            console.print(f"full sync queued as run {run.id}")


def _platform_client_id(session: Session, ref: str | None) -> int | None:
    return None if ref is None else connect.find_platform_client(session, ref).id


def _setting_value(value: Any) -> Any:
    """A `--set` value as the adapter expects it: true/false as flags, numbers as numbers, else the text."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        number = json.loads(value)
    except ValueError:
        return value
    return number if isinstance(number, int | float) and not isinstance(number, bool) else value


def _add_with_keys(
    obj: Context,
    kind: str,
    flow: ConnectFlow,
    *,
    name: str,
    given: dict[str, Any],
    cfg: dict[str, Any],
    credentials: dict[str, str],
    inventory_buffer: int,
    platform_client: str | None,
    no_sync: bool,
) -> None:
    """`merchants add` of a kind whose adapter declares a connect flow."""
    for option in flow.connect_options:
        if given.get(option.dest):
            continue
        if option.required:
            raise click.UsageError(f"{kind} needs {option.flag}")
        if option.prompt:
            given[option.dest] = str(click.prompt(option.prompt, hide_input=option.secret, err=True))
    cfg = {key: _setting_value(value) for key, value in cfg.items()}
    rt = obj.rt
    with _errors():
        connected = connect.connect(
            rt,
            kind,
            name=name,
            fields=given,
            config=cfg,
            credentials=credentials,
            platform_client=platform_client,
            inventory_buffer=inventory_buffer,
            first_sync=not no_sync,
        )
    console.print(f"merchant {connected.merchant_id} ({name}, {kind} {connected.store_ref}) added")
    for line in connected.summary:
        console.print(line)
    if connected.event_types:
        console.print(f"notifications subscribed: {', '.join(connected.event_types)}")
    for warning in connected.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    if connected.sync_run_id is not None:
        console.print(f"full sync queued as run {connected.sync_run_id}")


@merchants.command("assign")
@click.argument("merchant")
@click.option("--client", "platform_client", required=True, help="Platform client (id or name).")
@pass_ctx
def merchants_assign(obj: Context, merchant: str, platform_client: str) -> None:
    """Link MERCHANT (id or name) to a platform client: that client's API reaches the merchant's data."""
    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        owner = _platform_client_id(session, platform_client)
        m.platform_client_id = owner
        merchant_id, merchant_name = m.id, m.name
    console.print(f"merchant {merchant_id} ({merchant_name}) linked to platform client {owner}")


@merchants.command("kinds")
def merchants_kinds() -> None:
    """List installed store kinds."""
    for kind in registry.kinds():
        click.echo(kind)


@merchants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def merchants_list(obj: Context, as_json: bool) -> None:
    """List merchants with their sync health."""
    rt = obj.rt
    with rt.db.session() as session:
        rows: list[dict[str, Any]] = []
        for m in session.scalars(select(Merchant).order_by(Merchant.id)):
            last = session.scalars(
                select(SyncRun).where(SyncRun.merchant_id == m.id).order_by(SyncRun.id.desc()).limit(1)
            ).first()
            rows.append(
                {
                    "id": m.id,
                    "name": m.name,
                    "kind": m.kind,
                    "status": m.status,
                    "store": m.store_ref,
                    "last_sync": last.status if last else None,
                    "last_sync_at": (last.finished_at or last.created_at).isoformat() if last else None,
                    "problem": m.problem or _run_problem(rt, last),
                }
            )
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("name", "name"),
            ("kind", "kind"),
            ("status", "status"),
            ("store", "store"),
            ("last sync", "last_sync"),
            ("problem", "problem"),
        ],
        empty="no merchants (connect one with `storelink merchants add`)",
    )


@merchants.command("show")
@click.argument("merchant")
@pass_ctx
def merchants_show(obj: Context, merchant: str) -> None:
    """Show one merchant (by id or name) and its recent sync runs."""
    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        console.print(f"[bold]{m.name}[/] (id {m.id}) {m.kind} {m.store_ref} — {m.status}")
        if m.problem:
            console.print(f"[red]problem:[/] {m.problem}")
        console.print(f"inventory buffer {m.inventory_buffer}, location {m.location_ref or 'default'}")
        runs = session.scalars(
            select(SyncRun).where(SyncRun.merchant_id == m.id).order_by(SyncRun.id.desc()).limit(10)
        ).all()
        if runs and runs[0].status not in TERMINAL:
            latest = runs[0]
            console.print(
                f"run {latest.id} {latest.status}: {syncs.waiting_for(rt, latest)}", highlight=False
            )
        console.print(_runs_table(runs) if runs else "no sync runs yet")


STUCK_AFTER = 60.0
"""Seconds a queued run may wait for its first worker before `merchants list` shows it as a problem."""


def _run_problem(rt: runtime.Runtime, run: SyncRun | None) -> str | None:
    """The problem column for a merchant whose last run is retrying after an error, or no worker took."""
    if run is None or run.status != "queued":
        return None
    waited = (datetime.now(UTC) - run.created_at).total_seconds()
    if not run.error and (waited < STUCK_AFTER or rt.queues.workers_on(run.queue)):
        return None
    return f"sync run {run.id} {syncs.waiting_for(rt, run)}"


def _summary(run: SyncRun) -> Table:
    table = Table("run " + str(run.id), "", title="dry run (nothing written)" if run.dry_run else None)
    elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else 0
    status = run.status
    if run.status == "succeeded" and run.failed_rows:
        status = f"succeeded, {run.failed_rows} bad row(s) skipped"
    for label, value in (
        ("status", status),
        ("attempts", run.attempt),
        ("rows read", run.rows_read),
        ("created", run.created),
        ("updated", run.updated),
        ("unchanged", run.unchanged),
        ("deleted", run.deleted),
        ("failed rows", run.failed_rows),
        ("events", run.events_emitted),
        ("seconds", f"{elapsed:.1f}"),
        ("error", run.error or "-"),
    ):
        table.add_row(label, str(value))
    return table


def _runs_table(runs: Any) -> Table:
    table = Table(
        "run",
        "kind",
        "status",
        "rows",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "failed rows",
        "events",
        "error",
    )
    for r in runs:
        kind = f"{r.kind}{' (dry run)' if r.dry_run else ''}"
        table.add_row(
            str(r.id),
            kind,
            r.status,
            str(r.rows_read),
            str(r.created),
            str(r.updated),
            str(r.unchanged),
            str(r.deleted),
            str(r.failed_rows),
            str(r.events_emitted),
            r.error or "",
        )
    return table


# --- resync ---------------------------------------------------------------------------------------------------


@main.command()
@click.argument("merchant")
@click.option("--catalog", "kind", flag_value="catalog", default=True, help="Resync the catalog (default).")
@click.option("--dry-run", is_flag=True, help="Compute and print the changes without applying them.")
@click.option("--no-wait", is_flag=True, help="Queue the run and return at once.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the run.")
@click.option(
    "--notice-after",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a queued run may wait before what it waits for is printed.",
)
@pass_ctx
def resync(
    obj: Context, merchant: str, kind: str, dry_run: bool, no_wait: bool, timeout: float, notice_after: float
) -> None:
    """Run a full resync for MERCHANT (id or name) through the workers, with progress and a summary.

    A run no worker takes, or one retrying after an error, is said so after --notice-after seconds."""
    rt = obj.rt
    with _errors():
        with rt.db.session() as session:
            merchant_id = get_merchant(session, merchant).id
        run = syncs.request_sync(rt, merchant_id, kind=kind, full=True, dry_run=dry_run)
    console.print(f"run {run.id} queued on '{run.queue}'")
    if no_wait:
        return
    final = _follow(rt, run.id, timeout, notice_after)
    console.print(_summary(final))
    if final.row_errors:
        table = Table("line", "skipped row")
        for e in final.row_errors[:20]:
            table.add_row(str(e["line"]), e["error"])
        console.print(table)
        if final.failed_rows > 20:
            console.print(f"… and {final.failed_rows - 20} more")
    if dry_run:
        console.print(_diff_table(final.diff) if final.diff else "dry run: nothing would change")
    if final.status != "succeeded":
        raise click.ClickException(f"run {final.id} {final.status}: {final.error or 'no worker finished it'}")


DIFF_ROWS = 50


def _diff_table(diff: list[dict[str, Any]]) -> Table:
    """A dry run's change list, one row per changed field with the stored value and the store's."""
    table = Table("change", "product", "variant", "field", "before", "after", title="dry run: would change")
    shown = 0
    for entry in diff:
        fields = entry.get("changes") or {"": [None, None]}
        for name, (old, new) in fields.items():
            if shown == DIFF_ROWS:
                table.caption = f"the first {DIFF_ROWS} changes of {len(diff)} recorded"
                return table
            table.add_row(
                entry["op"],
                entry.get("product", ""),
                entry.get("variant", ""),
                name,
                _cell(old) if old is not None else "-",
                _cell(new) if new is not None else "-",
            )
            shown += 1
    return table


def _follow(rt: runtime.Runtime, run_id: int, timeout: float, notice_after: float) -> SyncRun:
    """Wait for the run to finish, with progress; say what it waits for once it has waited `notice_after`."""
    started = time.monotonic()
    deadline = started + timeout
    noticed: str | None = None
    run = syncs.get_run(rt, run_id)
    total = syncs.expected_rows(rt, run)
    of = f" of ~{total:,} (as last time)" if total else " (total unknown before a first sync)"
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("waiting for a worker", total=total, rows="")
        while True:
            run = syncs.get_run(rt, run_id)
            progress.update(
                task,
                completed=min(run.rows_read, total) if total else run.rows_read,
                description=f"run {run_id} {run.status}",
                rows=f"{run.rows_read:,} rows{of}, {run.events_emitted:,} events",
            )
            if run.status in TERMINAL:
                return run
            waited = time.monotonic() - started
            if run.status == "queued" and waited >= notice_after:
                why = syncs.waiting_for(rt, run, waited=waited)
                if noticed is None or (run.error or "") not in noticed:
                    progress.console.print(f"run {run_id} queued: {why}", highlight=False)
                    noticed = why
            if time.monotonic() > deadline:
                why = syncs.waiting_for(rt, run, waited=waited)
                raise click.ClickException(f"run {run_id} still {run.status} after {timeout:.0f}s: {why}")
            time.sleep(0.25)


# --- jobs -----------------------------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Queued work: failed jobs and retries."""


@jobs.command("failed")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def jobs_failed(obj: Context, as_json: bool) -> None:
    """List failed jobs with their errors, and failed sync runs."""
    rt = obj.rt
    failed: list[dict[str, Any]] = []
    for job in rt.queues.failed_jobs():
        result = job.latest_result()
        exc = (result.exc_string if result is not None else None) or ""
        failed.append(
            {
                "id": job.id,
                "queue": job.origin,
                "func": job.func_name,
                "ended_at": job.ended_at.isoformat() if job.ended_at else None,
                "error": exc.strip().splitlines()[-1] if exc.strip() else "",
            }
        )
    with rt.db.session() as session:
        runs = session.scalars(
            select(SyncRun).where(SyncRun.status == "failed").order_by(SyncRun.id.desc()).limit(50)
        ).all()
        failed_runs: list[dict[str, Any]] = [
            {"run": r.id, "merchant_id": r.merchant_id, "error": r.error} for r in runs
        ]
    if as_json:
        click.echo(json.dumps({"jobs": failed, "sync_runs": failed_runs}))
        return
    table = Table("job", "queue", "function", "ended", "error", title="failed jobs")
    for j in failed:
        table.add_row(j["id"], j["queue"], j["func"], j["ended_at"] or "", j["error"])
    console.print(table if failed else "no failed jobs")
    table = Table("run", "merchant", "error", title="failed sync runs")
    for r in failed_runs:
        table.add_row(str(r["run"]), str(r["merchant_id"]), r["error"] or "")
    console.print(table if failed_runs else "no failed sync runs")


@jobs.command("retry")
@click.argument("job_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed job.")
@pass_ctx
def jobs_retry(obj: Context, job_id: str | None, retry_all: bool) -> None:
    """Put a failed job (or all of them) back on its queue, reopening the work it failed (a failed sync run
    is queued again); a job whose work cannot be done again is left failed, with the reason."""
    from connector import failed_jobs

    rt = obj.rt
    if not job_id and not retry_all:
        raise click.UsageError("give a JOB_ID or --all")
    if retry_all:
        outcomes = [failed_jobs.retry_job(rt, job) for job in rt.queues.failed_jobs()]
    else:
        outcomes = [failed_jobs.retry(rt, job_id or "")]
    if not outcomes:
        console.print("no failed jobs to retry")
        return
    for outcome in outcomes:
        if outcome.requeued:
            console.print(f"requeued {outcome.job_id}: {outcome.note}", highlight=False)
    refused = [o for o in outcomes if not o.requeued]
    requeued = len(outcomes) - len(refused)
    console.print(f"requeued {requeued} job(s)" + (f", {len(refused)} not retried" if refused else ""))
    if refused:
        raise click.ClickException(
            "; ".join(f"{o.job_id} not retried: {o.note}" for o in refused[:10])
            + (f"; … and {len(refused) - 10} more" if len(refused) > 10 else "")
        )


# --- platform clients ---------------------------------------------------------------------------------------


@main.group()
def clients() -> None:
    """Platform API clients and their API keys."""


@clients.command("add")
@click.argument("name")
@pass_ctx
def clients_add(obj: Context, name: str) -> None:
    """Create a client; its API key is printed once (only a hash is kept)."""
    from connector import clients as service

    with _errors(), obj.rt.db.session() as session:
        client, key = service.create_client(session, name)
        client_id = client.id
    console.print(f"client {client_id} ({name}) added; API key (shown once): {key}", highlight=False)


@clients.command("list")
@pass_ctx
def clients_list(obj: Context) -> None:
    """List clients."""
    from connector.models import PlatformClient

    table = Table("id", "name", "active", "created")
    with obj.rt.db.session() as session:
        for c in session.scalars(select(PlatformClient).order_by(PlatformClient.id)):
            table.add_row(str(c.id), c.name, str(c.active), c.created_at.isoformat(timespec="seconds"))
    console.print(table)


def _invalidate_keys(obj: Context) -> None:
    """Have every web process drop its cached key lookups; say so when Redis did not answer."""
    from connector import clients as service
    from connector.api.common import KEY_CACHE_SECONDS

    if not service.invalidate_cached_keys(obj.rt.redis):
        console.print(
            f"warning: Redis did not answer, so web processes may accept the old key for up to "
            f"{KEY_CACHE_SECONDS:g} seconds",
            highlight=False,
        )


@clients.command("rotate-key")
@click.argument("client_id", type=int)
@pass_ctx
def clients_rotate(obj: Context, client_id: int) -> None:
    """Replace a client's API key (the old one stops working at once); the new key is printed once."""
    from connector import clients as service

    with _errors(), obj.rt.db.session() as session:
        _, key = service.rotate_key(session, client_id)
    _invalidate_keys(obj)
    console.print(f"new API key (shown once): {key}", highlight=False)


@clients.command("deactivate")
@click.argument("client_id", type=int)
@pass_ctx
def clients_deactivate(obj: Context, client_id: int) -> None:
    """Refuse a client's API key from now on (at once); its merchants, orders and endpoints are kept."""
    from connector import clients as service

    with _errors(), obj.rt.db.session() as session:
        name = service.deactivate(session, client_id).name
    _invalidate_keys(obj)
    console.print(f"client {client_id} ({name}) deactivated; its API key is refused", highlight=False)


@clients.command("remove")
@click.argument("client_id", type=int)
@pass_ctx
def clients_remove(obj: Context, client_id: int) -> None:
    """Delete a client that holds no merchants, orders or webhook endpoints (else deactivate it)."""
    from connector import clients as service

    with _errors(), obj.rt.db.session() as session:
        name = service.remove(session, client_id)
    _invalidate_keys(obj)
    console.print(f"client {client_id} ({name}) removed", highlight=False)


# --- outbound webhooks ---------------------------------------------------------------------------------------


@main.group()
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


@main.command()
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
    from connector.models import Delivery, EventPayload

    rt = obj.rt
    query = (
        select(Delivery, EventPayload.type)
        .join(EventPayload, EventPayload.id == Delivery.payload_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Delivery.status == status)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event_type:
        query = query.where(EventPayload.type == event_type)
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
            for d, t in session.execute(query)
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


@main.command()
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


# --- inbound store webhooks ---------------------------------------------------------------------------------


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@main.group()
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
    from connector.models import InboundEvent

    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        query = (
            select(InboundEvent)
            .where(InboundEvent.merchant_id == m.id)
            .order_by(InboundEvent.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(InboundEvent.status == status)
        if topic:
            query = query.where(InboundEvent.topic == topic)
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
            for e in session.scalars(query)
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
        scheduling.signal(rt.redis, merchant_id)
    console.print(f"replayed {len(replayed)} inbound deliver{'y' if len(replayed) == 1 else 'ies'}")


# --- benchmarks -----------------------------------------------------------------------------------------------


@main.group()
def bench() -> None:
    """Benchmarks: each prints a table and, last, one JSON line with its figures and targets."""


@bench.command("feed-sync")
@click.option("--rows", default=100_000, show_default=True, help="Feed rows to generate and sync.")
@click.option("--database-url", default="", help="Database to measure on (default: a fresh SQLite file).")
@click.option(
    "--repeat", default=3, show_default=True, type=click.IntRange(1, 20), help="Rounds; fastest counts."
)
def bench_feed_sync(rows: int, database_url: str, repeat: int) -> None:
    """Catalog sync of a generated feed against a bare stream-parse + bulk-insert baseline."""
    from connector.bench.feed_sync import run

    result = run(rows=rows, database_url=database_url or None, console=console, repeat=repeat)
    click.echo(json.dumps(result))


@bench.command("webhooks")
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
@click.option("--database-url", default="", help="Database to measure on (default: a fresh SQLite file).")
def bench_webhooks(seconds: float, rate: int, events: int, database_url: str) -> None:
    """Inbound acceptance, batched processing and store-to-platform latency against bare baselines."""
    from connector.bench.webhooks import run

    result = run(
        database_url=database_url or None, console=console, seconds=seconds, rate=rate, events=events
    )
    click.echo(json.dumps(result))


@bench.command("shopify")
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
@click.option("--database-url", default="", help="Database to measure on (default: a fresh SQLite file).")
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


@bench.command("flash-sale")
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
@click.option("--database-url", default="", help="Database to measure on (default: a fresh SQLite file).")
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


if __name__ == "__main__":
    main()
