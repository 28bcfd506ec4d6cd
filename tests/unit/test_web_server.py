"""`storelink web` runs gunicorn configured as gunicorn's own command is: `config/gunicorn.conf.py` (its
settings and `post_fork` hook), then GUNICORN_CMD_ARGS, then the bind it is given."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.settings import get_settings
from connector.web.server import CONFIG_FILE, WebServer


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The environment, with settings read from it afresh (the configuration file reads them once)."""
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_the_web_server_takes_the_configuration_file_and_the_bind_it_is_given(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("WEB_WORKERS", "3")
    env.setenv("GUNICORN_BIND", "127.0.0.1:4321")
    cfg = WebServer("127.0.0.1:1234").cfg
    assert cfg.bind == ["127.0.0.1:1234"]
    assert cfg.workers == 3 and cfg.preload_app and cfg.worker_class_str == "gthread"
    assert cfg.control_socket_disable
    assert cfg.post_fork.__code__.co_filename == str(CONFIG_FILE)
    assert (
        cfg.proc_name == "connector.app:create_app()"
    )  # titles: gunicorn: master [connector.app:create_app()]


def test_without_a_bind_the_configurations_applies_and_gunicorn_cmd_args_override(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("GUNICORN_BIND", "127.0.0.1:4321")
    env.setenv("GUNICORN_CMD_ARGS", "--timeout 7 --workers 5")
    cfg = WebServer().cfg
    assert cfg.bind == ["127.0.0.1:4321"]
    assert cfg.timeout == 7 and cfg.workers == 5
