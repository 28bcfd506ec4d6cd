"""gunicorn configuration for the Storelink web process; values come from Storelink's settings."""

import os

from config.settings import get_settings

_settings = get_settings()

bind = os.environ.get("GUNICORN_BIND", f"{_settings.web_host}:{_settings.web_port}")
workers = _settings.web_workers
worker_class = "sync"
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
