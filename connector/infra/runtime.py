"""The process's wiring: settings, database (and its group commit), Redis, queues and secret box, built once per
process."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property

from redis import Redis

from config.settings import Settings, get_settings
from connector.infra.crypto import SecretBox
from connector.infra.db import Database
from connector.infra.group_commit import GroupCommit
from connector.infra.queue import Queues, connect

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a request handler, job or command needs, created lazily and never shared across forks."""

    settings: Settings
    redis_url: str
    pid: int = field(default_factory=os.getpid)

    @cached_property
    def db(self) -> Database:
        return Database.from_settings(self.settings)

    @cached_property
    def group_commit(self) -> GroupCommit:
        """The process's batching of concurrent purchase writes into one transaction (`connector.infra.group_commit`)."""
        return GroupCommit(self.db)

    @cached_property
    def redis(self) -> Redis:
        return connect(self.redis_url)

    @cached_property
    def queues(self) -> Queues:
        return Queues(self.redis)

    @cached_property
    def secrets(self) -> SecretBox:
        return SecretBox.from_settings(self.settings)

    def after_fork(self) -> None:
        """Adopt this runtime in a process forked from the one that built it (gunicorn's workers, forked from
        the master that loaded the app): the parent's database and Redis connections are left to the parent,
        and new ones are made on first use."""
        if "db" in self.__dict__:
            self.db.after_fork()
        self.__dict__.pop("group_commit", None)  # its lock may have been held in the parent
        if "redis" in self.__dict__:
            self.redis.connection_pool.reset()
        self.pid = os.getpid()

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
        if "redis" in self.__dict__:
            self.redis.close()


_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    """Make `runtime` the one `current()` returns in this process (composition roots call this)."""
    global _current
    _current = runtime
    return runtime


def after_fork() -> None:
    """In a process just forked: the installed runtime, if any, becomes this process's (`Runtime.after_fork`)."""
    if _current is not None:
        _current.after_fork()


def current() -> Runtime:
    """The process's runtime; built from the environment on first use (jobs in a fresh worker process)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        settings = get_settings()
        if not settings.redis_url:
            raise RuntimeError("no Redis URL: set REDIS_URL, or start the processes with `storelink up`")
        _current = Runtime(settings=settings, redis_url=settings.redis_url)
    return _current
