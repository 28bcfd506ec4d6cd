"""The demo's services: its own settings (none read from the environment), the embedded Redis and the SQLite
database in its data directory, the store emulators and the platform receiver served from this process on free
loopback ports, and `storelink up` (web, workers, scheduler) as a child process in a session of its own.

Everything started here is stopped through the ExitStack it was registered on, last started first stopped:
`storelink up` (and whatever it started), the emulators, the database connections, Redis."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil
import requests

from config.settings import Settings, SettingsError, load_settings
from connector.infra import migrate, preflight, runtime
from connector.infra.embedded_redis import EmbeddedRedis
from connector.sandbox import platform
from connector.sandbox import shopify as shopify_sandbox
from connector.sandbox import walmart as walmart_sandbox

logger = logging.getLogger(__name__)

UP_WORKERS: Final = 2
READY_TIMEOUT: Final = 90.0
STOP_TIMEOUT: Final = 20.0
SHOPIFY_BUCKET: Final = 20_000.0
SHOPIFY_RESTORE_RATE: Final = 1_000.0
"""The emulated shop's cost bucket: a Shopify Plus shop's (20,000 points, 1,000 restored a second)."""
FLASH_SKU: Final = "FLASH-HOODIE-1"
FLASH_STOCK: Final = 5_000
WALMART_CHANNEL: Final = "Video commerce"
TUNED: Final = {
    # The scheduler's sweeps and approvals every 2 s and clicks flushed every 2 s, so that what the demo
    # shows settles within its run; every other setting keeps its default.
    "SWEEP_INTERVAL_SECONDS": "2",
    "AFFILIATE_CLICK_FLUSH_SECONDS": "2",
    "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "FEED_ALLOW_FILES": "true",
    "FEED_ALLOW_PRIVATE_URLS": "true",
    "LOG_LEVEL": "INFO",
    "LOG_JSON": "true",
}


class ServiceError(Exception):
    """A service of the demo did not start or stopped; the message is the one-line cause."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big the demo is: the stores' catalogs, the creators, the flash sale and the other orders."""

    shopify_products: int = 2_000
    walmart_items: int = 1_000
    feed_products: int = 500
    creators: int = 3
    buyers: int = 300
    allocation: int = 200
    orders: int = 50
    per_buyer_limit: int = 2
    attempts_per_buyer: int = 3


def setting_names() -> frozenset[str]:
    """Every environment variable Storelink reads as a setting."""
    return frozenset(name.upper() for name in Settings.model_fields) | {"WALMART_BASE_URL"}


def own_settings(env: dict[str, str]) -> Settings:
    """Settings from `env` alone: every field not in it takes its default, whatever the environment says."""
    defaults = {
        name: field.get_default(call_default_factory=True) for name, field in Settings.model_fields.items()
    }
    given = {name.lower(): value for name, value in env.items() if name.lower() in defaults}
    try:
        return load_settings(**{**defaults, **given})
    except SettingsError as exc:
        raise ServiceError(str(exc)) from None


def prepare_data_dir(data_dir: Path) -> None:
    """The demo's data directory: new or empty of a database, private to its owner."""
    database = data_dir / "storelink.db"
    if database.exists():
        raise ServiceError(
            f"{data_dir} already holds a database: the demo needs a data directory of its own "
            "(give --data-dir a new or empty directory)"
        )
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / "demo" / "logs").mkdir(parents=True, exist_ok=True)


def start_redis(stack: contextlib.ExitStack, data_dir: Path) -> str:
    server = EmbeddedRedis(data_dir)
    url = server.start()
    stack.callback(server.stop)
    return url


def start_runtime(stack: contextlib.ExitStack, env: dict[str, str]) -> runtime.Runtime:
    """This process's runtime on the demo's settings, the database migrated and the secret key made (before
    any child process could make one of its own)."""
    rt = runtime.install(runtime.Runtime(settings=own_settings(env), redis_url=env["REDIS_URL"]))
    stack.callback(rt.close)
    with preflight.database_errors(rt.db.engine):
        migrate.upgrade(rt.db.engine)
    rt.secrets.encrypt("")
    return rt


@dataclass
class Emulators:
    shopify: shopify_sandbox.Server
    walmart: walmart_sandbox.Server
    platform: platform.Server


def start_emulators(stack: contextlib.ExitStack) -> Emulators:
    """The Shopify and Walmart emulators and the platform's webhook receiver, listening (empty)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulators' access logs
    shop = stack.enter_context(
        shopify_sandbox.serve(
            bulk_step_delay=0.0, maximum_available=SHOPIFY_BUCKET, restore_rate=SHOPIFY_RESTORE_RATE
        )
    )
    seller = stack.enter_context(walmart_sandbox.serve(mcs_delay=0.2, feed_delay=0.2))
    receiver = stack.enter_context(platform.serve())
    return Emulators(shop, seller, receiver)


def seed_emulators(emulators: Emulators, sizes: Sizes) -> None:
    """The stores' catalogs (and the flash-sale hoodie), the seller's Multichannel channel, and the Admin
    API's schema loaded before the first request needs it."""
    shop, seller = emulators.shopify, emulators.walmart
    shop.store.seed_catalog(sizes.shopify_products, 3, available=(0, 60))
    shop.store.add_product(
        "Flash Sale Hoodie",
        variants=[{"title": "One size", "sku": FLASH_SKU, "price": "59.00", "available": FLASH_STOCK}],
        vendor="Acme",
        product_type="Hoodie",
        notify=False,
    )
    shop.emulator.query("{ shop { name } }")  # the first document loads the schema
    seller.store.seed_catalog(sizes.walmart_items, quantity=lambda i: 20 + i % 80)
    seller.store.add_channel(WALMART_CHANNEL)


def service_env(data_dir: Path, redis_url: str, web_port: int, emulators: Emulators) -> dict[str, str]:
    """The settings of the demo's processes, as environment variables."""
    app = emulators.shopify.emulator.client
    web_url = f"http://127.0.0.1:{web_port}"
    return {
        **TUNED,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'storelink.db'}",
        "REDIS_URL": redis_url,
        "SECRET_KEYS": "",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(web_port),
        "PUBLIC_URL": web_url,
        "SHOPIFY_API_KEY": app.client_id,
        "SHOPIFY_API_SECRET": app.client_secret,
        "SHOPIFY_ADMIN_BASE_URL": emulators.shopify.url,
        "WALMART_BASE_URL": emulators.walmart.url,
    }


def child_env(settings_env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Storelink setting of the user's, plus the demo's own."""
    names = setting_names()
    return {
        **{key: value for key, value in os.environ.items() if key.upper() not in names},
        **settings_env,
    }


class UpProcess:
    """`storelink up` as a child process in a session of its own, its output kept in a log file."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._family: list[psutil.Process] = []

    def start(self) -> None:
        argv = [sys.executable, "-m", "connector.cli", "up", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--workers", str(UP_WORKERS)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until `/readyz` answers 200; a `storelink up` that exits first is an error naming its last word."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    self._remember_family()
                    return
            time.sleep(0.2)
        raise ServiceError(f"storelink up was not ready within {timeout:.0f} s (see {self.log_path})")

    def check(self) -> None:
        """Raise when `storelink up` has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ServiceError(
                f"storelink up exited with code {self.process.returncode}: {last_word(self.log_path)}"
            )

    def _remember_family(self) -> None:
        """The processes `storelink up` started (each in a session of its own), to be sure none outlives it."""
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                self._family = psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> None:
        """SIGTERM to `storelink up`, which stops its processes; whatever is left after STOP_TIMEOUT is killed."""
        process, self.process = self.process, None
        if process is None:
            return
        self._remember_family()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for child in self._family:
            with contextlib.suppress(psutil.Error):
                if child.is_running():
                    child.kill()


def last_word(log_path: Path) -> str:
    """The last thing a process wrote to its log: the message of a JSON log line, else the line itself."""
    try:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        try:
            entry: Any = json.loads(line)
        except ValueError:
            return line.strip().removeprefix("Error: ")
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical", "warning"):
            return str(entry.get("msg", line))
    return lines[-1].strip() if lines else "no output"


def start_up(stack: contextlib.ExitStack, env: dict[str, str], log_path: Path) -> UpProcess:
    """`storelink up` started (not yet ready: `UpProcess.wait_ready`)."""
    up = UpProcess(child_env(env), int(env["WEB_PORT"]), log_path)
    stack.callback(up.stop)
    up.start()
    return up
