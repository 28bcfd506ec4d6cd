"""The sandbox platform's webhook receiver in a process of its own (as the platform is another service),
driven over a pipe by a benchmark: the `webhooks` bench's latency run and the `scale` bench's fan-out run.

Each function here is the target of a spawned process (`connector.bench.processes.piped_process`), so this
module imports only the standard library and the receiver itself (Flask, but no database, queue or console
library).
"""

from __future__ import annotations

import logging
from typing import Any

from connector.sandbox.platform import serve


def latency_receiver(conn: Any) -> None:
    """Sends its URL, takes `("secret", s)`, answers `"count"` and, on `"stop"`, sends what arrived: when
    each webhook id first arrived, the webhook id per quantity received, and the duplicates."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the receiver's own access log
    with serve() as platform:
        conn.send(platform.url)
        while True:
            command = conn.recv()
            if command == "count":
                conn.send(len(platform.receiver.received()))
            elif isinstance(command, tuple) and command[0] == "secret":
                platform.receiver.set_secrets([command[1]])
                conn.send("ok")
            else:
                arrived: dict[str, float] = {}
                for req in platform.receiver.requests():
                    if req.webhook_id and req.status == 200 and req.webhook_id not in arrived:
                        arrived[req.webhook_id] = req.at
                received = {int(r.data["available"]): r.webhook_id for r in platform.receiver.received()}
                conn.send((arrived, received, platform.receiver.duplicates))
                return


def fanout_receiver(conn: Any) -> None:
    """Sends its URL, takes a list of secrets (answering `"ok"`), stops on None."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with serve() as platform:
        conn.send(platform.url)
        while (command := conn.recv()) is not None:
            platform.receiver.set_secrets(command)
            conn.send("ok")
