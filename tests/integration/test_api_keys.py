"""API keys over HTTP and the `storelink clients` commands: a rotated, deactivated or removed key is refused at
once by every web process, though each keeps its own in-process cache of key lookups."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.app import create_app
from connector.infra import runtime
from connector.infra.models import PlatformClient
from tests.integration.checkout_support import add_merchant, make_client

Runtime = runtime.Runtime
Cli = Callable[..., str]


@pytest.fixture
def workers(rt: Runtime) -> list[FlaskClient]:
    """Two web workers, each with its own key cache (as gunicorn's worker processes have)."""
    return [create_app(rt.settings, rt).test_client() for _ in range(2)]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _status(worker: FlaskClient, headers: dict[str, str]) -> int:
    return worker.get("/v1/merchants", headers=headers).status_code


def _key_in(output: str) -> str:
    found = re.search(r"sl_live_[A-Za-z0-9_-]{32}", output)
    assert found, output
    return found.group(0)


def test_a_rotated_key_is_refused_at_once_by_every_worker(
    rt: Runtime, cli: Cli, workers: list[FlaskClient]
) -> None:
    client_id, old = make_client(rt, "platform-a")
    assert [_status(w, old) for w in workers] == [200, 200]  # each worker has the lookup cached

    new = _auth(_key_in(cli("clients", "rotate-key", str(client_id))))

    assert [_status(w, old) for w in workers] == [401, 401]
    assert [_status(w, new) for w in workers] == [200, 200]


def test_a_deactivated_client_is_refused_at_once_by_every_worker(
    rt: Runtime, cli: Cli, workers: list[FlaskClient]
) -> None:
    client_id, key = make_client(rt, "platform-b")
    _, other = make_client(rt, "platform-c")
    assert [_status(w, key) for w in workers] == [200, 200]
    assert [_status(w, other) for w in workers] == [200, 200]

    out = cli("clients", "deactivate", str(client_id))

    assert f"client {client_id} (platform-b) deactivated" in out
    assert [_status(w, key) for w in workers] == [401, 401]
    assert [_status(w, other) for w in workers] == [200, 200]  # other clients keep working
    listed = cli("clients", "list")
    assert re.search(rf"{client_id}\s+.*platform-b\s+.*False", listed), listed


def test_removing_a_client_deletes_an_unused_one_and_refuses_one_that_holds_data(
    rt: Runtime, cli: Cli, workers: list[FlaskClient], tmp_path: Path
) -> None:
    unused, key = make_client(rt, "platform-unused")
    used, used_key = make_client(rt, "platform-used")
    add_merchant(rt, tmp_path, used)
    assert _status(workers[0], key) == 200

    assert f"client {unused} (platform-unused) removed" in cli("clients", "remove", str(unused))
    refused = cli("clients", "remove", str(used), expect=1)
    missing = cli("clients", "remove", "999999", expect=1)

    assert _status(workers[0], key) == 401
    assert "has 1 merchant(s): deactivate it instead" in refused and "Traceback" not in refused
    assert "not found" in missing and len(missing.strip().splitlines()) == 1
    with rt.db.session() as session:
        assert list(session.scalars(select(PlatformClient.name).order_by(PlatformClient.id))) == [
            "platform-used"
        ]
    assert _status(workers[0], used_key) == 200


@pytest.fixture
def redis_down(rt: Runtime) -> Iterator[FlaskClient]:
    """A web worker whose Redis does not answer."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Runtime(settings=rt.settings, redis_url=f"redis://127.0.0.1:{port}/0")
    try:
        yield create_app(rt.settings, down).test_client()
    finally:
        runtime.install(rt)
        down.close()


def test_without_redis_every_request_looks_the_key_up(rt: Runtime, cli: Cli, redis_down: FlaskClient) -> None:
    client_id, key = make_client(rt, "platform-d")
    assert _status(redis_down, key) == 200

    cli("clients", "deactivate", str(client_id))

    assert _status(redis_down, key) == 401
