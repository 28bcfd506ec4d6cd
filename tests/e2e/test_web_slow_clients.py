"""End to end: `storelink up` keeps answering /healthz while clients send request bodies one byte at a time
(its buffering front takes each request in whole before a gunicorn worker sees it)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from tests.helpers import SQLITE_ONLY, Up, wait_for

pytestmark = [pytest.mark.slow, SQLITE_ONLY]

WEB_WORKERS = 2
SLOW_CLIENTS = 2 * WEB_WORKERS  # more than there are gunicorn workers
BODY_BYTES = 100_000
DRIP_INTERVAL = 0.5
DRIP_BYTES = 40  # a slow client gives up after this many bytes: the test ends even when the server starves


@pytest.fixture
def up(settings: Settings, redis, tmp_path: Path) -> Iterator[Up]:
    server = Up(settings, tmp_path, workers=1, WEB_WORKERS=str(WEB_WORKERS))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class SlowClient(threading.Thread):
    """POSTs a webhook whose 100 KB body it sends one byte every DRIP_INTERVAL, until told to stop or
    DRIP_BYTES are sent (then it gives up and closes the connection)."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = stop
        self.sent = 0
        self.gave_up = threading.Event()

    def run(self) -> None:
        head = (
            "POST /webhooks/shopify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_BYTES}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.sendall(head.encode())
            while self.sent < DRIP_BYTES:
                sock.sendall(b" ")
                self.sent += 1
                if self.stop.wait(DRIP_INTERVAL):
                    return
        self.gave_up.set()


def test_healthz_answers_while_slow_clients_send_their_bodies(up: Up):
    port, web = up.port, up.url
    stop = threading.Event()
    clients = [SlowClient(port, stop) for _ in range(SLOW_CLIENTS)]
    for client in clients:
        client.start()
    try:
        wait_for(lambda: all(c.sent >= 3 for c in clients), 30, "every slow client to be sending its body")

        answer = requests.get(f"{web}/healthz", timeout=DRIP_BYTES * DRIP_INTERVAL * 3)

        assert answer.status_code == 200
        still_sending = [c for c in clients if not c.gave_up.is_set()]
        assert still_sending == clients, "/healthz answered only once slow clients gave up"
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)
