"""Fixtures of the entry points, shared by every test (loaded by `tests/conftest.py`): the web app and its test
client, a platform client of the Platform API with its key, and in-process `storelink` commands."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from config.settings import Settings
from connector.infra import runtime
from tests.helpers import ApiClient, build_app, make_client

Runner = Callable[..., Result]
"""`runner(*args, input=None)`: the `storelink` command's result, whatever its exit code."""


@pytest.fixture
def app(rt: runtime.Runtime) -> Flask:
    """The web app over the test's runtime (database and Redis)."""
    return build_app(rt)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A Flask test client of `app`."""
    return app.test_client()


@pytest.fixture
def api_client(rt: runtime.Runtime) -> ApiClient:
    """A platform client ("platform-a") and the Authorization header of its key."""
    return make_client(rt, "platform-a")


@pytest.fixture
def runner(settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Run `storelink` commands in-process against the test's database and Redis; returns click's result."""
    from connector.cli import main

    for name, value in {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DATA_DIR": str(settings.data_dir),
        "SECRET_KEYS": settings.secret_keys.get_secret_value(),
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",  # the sandbox platform listens on loopback
        "FEED_ALLOW_FILES": "true",
        "FEED_ALLOW_PRIVATE_URLS": "true",
    }.items():
        monkeypatch.setenv(name, value)
    cli_runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return cli_runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def cli(runner: Runner) -> Callable[..., str]:
    """Run `storelink` commands in-process; each must exit with `expect` (0); returns their output."""

    def invoke(*args: str, expect: int = 0) -> str:
        result = runner(*args)
        assert result.exit_code == expect, result.output
        return result.output

    return invoke
