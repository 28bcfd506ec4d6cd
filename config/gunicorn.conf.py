"""gunicorn configuration for the Storelink web process; values come from Storelink's settings."""

import os

from config.settings import get_settings

_settings = get_settings()

bind = os.environ.get("GUNICORN_BIND", f"{_settings.web_host}:{_settings.web_port}")
workers = _settings.web_workers
# Threads: a request waiting on Redis or the database leaves the worker to the others, and concurrent purchases
# in one worker share one transaction and its commit (`connector.infra.group_commit`).
worker_class = "gthread"
threads = _settings.web_threads
# The app is loaded once, in the master, and the workers are forked from it: a worker starts (and is replaced)
# without importing the application again, and shares the master's loaded code. `post_fork` hands each worker
# the runtime without the master's connections.
preload_app = True
timeout = 30
graceful_timeout = 10
keepalive = 5
# Request-size limits are enforced by the app too; these bound header abuse.
limit_request_line = 8190
limit_request_fields = 100
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
# No control socket: gunicorn's default path ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl) is one for every
# instance on the machine, so a second instance would take it over. Manage the server with signals instead.
control_socket_disable = True


def post_fork(server: object, worker: object) -> None:
    from connector.infra import runtime

    runtime.after_fork()
