"""`storelink up`, `worker` and `scheduler`: the service's long-running processes, and the hidden `web` and
`front` that `up` runs."""

from __future__ import annotations

import logging
import os

import click

from config.settings import Settings
from connector.cli.common import Context, _startup_errors, err, pass_ctx, resolve_cli_redis, run_file
from connector.cli.db import _seal_config_secrets
from connector.infra import logs, migrate, preflight, runtime

logger = logging.getLogger(__name__)


@click.command()
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


@click.command()
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
    from connector.infra.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(settings.data_dir)
    url = server.start()
    obj._stack.callback(server.stop)
    path = run_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url)
    obj._stack.callback(lambda: path.unlink(missing_ok=True))
    return url


@click.command(hidden=True)
@click.option(
    "--bind", default=None, help="HOST:PORT to listen on (default: config/gunicorn.conf.py's bind)."
)
def web(bind: str | None) -> None:
    """Run the web app under gunicorn with config/gunicorn.conf.py (as the Procfile's `web` does)."""
    from connector.web.server import WebServer

    WebServer(bind).run()


@click.command(hidden=True)
@click.option("--host", required=True, help="Address to listen on.")
@click.option("--port", required=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--upstream-port", required=True, type=click.IntRange(1, 65535), help="gunicorn's port.")
def front(host: str, port: int, upstream_port: int) -> None:
    """Run the buffering front of `storelink up` (`connector.infra.front`) before gunicorn on 127.0.0.1."""
    from connector.infra import front as buffering_front

    buffering_front.run(host, port, upstream_port)


@click.command()
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
    # gunicorn listens on a private loopback port behind the buffering front (`connector.infra.front`), which
    # takes each request in whole first: a client sending slowly never holds a gunicorn worker.
    web_port = str(preflight.free_loopback_port())
    sup.add_command("web", ["web", "--bind", f"127.0.0.1:{web_port}"])
    sup.add_command("front", ["front", "--host", host, "--port", str(port), "--upstream-port", web_port])
    for i in range(worker_count):
        sup.add_command(f"worker.{i + 1}", ["worker"])
    if not no_scheduler:
        sup.add_command("scheduler", ["scheduler"])
    err.print(f"storelink up: web on http://{bind}, {worker_count} worker(s), Redis {url}", highlight=False)
    if sup.run():
        raise click.ClickException("a process kept crashing; stopped everything (see the log above)")
