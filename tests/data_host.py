"""A data host for tests on hosts of their own (`tests.netns`): a private PostgreSQL (initdb into the lab's
scratch directory) and a private Redis, each listening on the host's address on the lab's bridge."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import psycopg
from redis import Redis

from connector.infra.embedded_redis import find_redis_server
from tests import netns
from tests.helpers import wait_for

PORT_REDIS, PORT_PG = 6379, 5432


def postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: the account it runs as."""
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return None


def unavailable(*, redis: bool = True) -> str | None:
    """Why a data host cannot be made here; None when it can."""
    reason = netns.unavailable()
    if reason:
        return reason
    if not (postgres_bin("initdb") and postgres_bin("postgres")):
        return "PostgreSQL's initdb and postgres are not installed (the data host runs its own)"
    if postgres_user() is None:
        return "no unprivileged account (postgres, nobody) to run PostgreSQL as"
    if redis:
        try:
            find_redis_server()
        except Exception as exc:
            return f"no redis-server: {exc}"
    return None


def start_postgres(lab: netns.Lab, host: str, logs: Path) -> str:
    """A private PostgreSQL on `host`, trusting the lab's subnet; its URL, once it answers."""
    address = lab.addresses[host]
    user = postgres_user()
    initdb, postgres = postgres_bin("initdb"), postgres_bin("postgres")
    assert user is not None and initdb is not None and postgres is not None
    pgdata = Path(lab.scratch) / "pgdata"
    pgdata.mkdir(mode=0o700)
    shutil.chown(pgdata, user, user)
    lab.run(host, [initdb, "-D", str(pgdata), "-U", "postgres", "-A", "trust", "--no-sync"], user=user)
    with (pgdata / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {lab.subnet} trust\n")
    command = [postgres, "-D", str(pgdata), "-h", address, "-p", str(PORT_PG), "-k", str(pgdata)]
    command += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
    command += ["-c", "full_page_writes=off", "-c", "max_connections=300"]
    lab.start(host, command, env=dict(os.environ), log=logs / "postgres.log", user=user)
    url = f"postgresql://postgres@{address}:{PORT_PG}/postgres"
    wait_for(lambda: _pg_ready(url), 30, f"{host}'s PostgreSQL")
    return url


def start_redis(lab: netns.Lab, host: str, logs: Path) -> str:
    """A private Redis on `host` (nothing on disk); its URL, once it answers."""
    address = lab.addresses[host]
    command = [find_redis_server(), "--bind", address, "--port", str(PORT_REDIS), "--save", ""]
    command += ["--appendonly", "no", "--protected-mode", "no"]
    lab.start(host, command, env=dict(os.environ), log=logs / "redis.log")
    url = f"redis://{address}:{PORT_REDIS}/0"
    wait_for(lambda: _answers(Redis.from_url(url)), 20, f"{host}'s Redis")
    return url


def _answers(conn: Redis) -> bool:
    try:
        return bool(conn.ping())
    except Exception:
        return False
    finally:
        conn.close()


def _pg_ready(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True
