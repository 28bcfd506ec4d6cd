"""`storelink up`'s buffering front as a process of its own, in front of a plain HTTP server standing in for
gunicorn: requests arrive there in whole and re-framed, answers come back, oversized bodies are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.helpers import free_port, wait_for

MAX_BODY = 1000


class Echo(BaseHTTPRequestHandler):
    """Answers with what it received: the body's length and the framing headers."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = json.dumps(
            {
                "path": self.path,
                "length": len(body),
                "content_length": self.headers.get("Content-Length"),
                "transfer_encoding": self.headers.get("Transfer-Encoding"),
                "forwarded_for": self.headers.get("X-Forwarded-For"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST  # noqa: N815 (the name http.server looks for)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def front(tmp_path: Path) -> Iterator[str]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    env = {
        **os.environ,
        "MAX_REQUEST_BYTES": str(MAX_BODY),
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    with (tmp_path / "front.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector.infra.front", "--host", "127.0.0.1", "--port", str(port),
             "--upstream-port", str(upstream.server_address[1])],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def listening() -> bool:
            assert proc.poll() is None, (tmp_path / "front.log").read_text()
            try:
                requests.get(url, timeout=2)
                return True
            except requests.RequestException:
                return False

        wait_for(listening, 30, "the front to listen")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        upstream.shutdown()
        upstream.server_close()


def test_a_request_arrives_in_whole_with_its_length(front: str):
    answer = requests.post(f"{front}/webhooks/x?a=1", data=b"y" * 500, timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {
        "path": "/webhooks/x?a=1",
        "length": 500,
        "content_length": "500",
        "transfer_encoding": None,
        "forwarded_for": "127.0.0.1",
    }


def test_a_chunked_body_is_passed_on_with_a_length(front: str):
    answer = requests.post(f"{front}/in", data=iter([b"a" * 300, b"b" * 200]), timeout=10)
    assert answer.status_code == 200
    assert answer.json()["length"] == 500 and answer.json()["transfer_encoding"] is None


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_a_413_problem(front: str, chunked: bool):
    body = b"z" * (MAX_BODY + 1)
    answer = requests.post(f"{front}/in", data=iter([body]) if chunked else body, timeout=10)
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "request_entity_too_large"
