"""Typed settings for every Storelink process, loaded from the environment and validated at start-up."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from string import Formatter

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".storelink"
DEFAULT_AFFILIATE_LANDING_URL = "https://platform.example/products/{product_id}?sl_click={click_id}"
LANDING_PLACEHOLDERS = frozenset({"product_id", "variant_id", "merchant_id", "code", "click_id"})


class SettingsError(Exception):
    """The environment holds a value Storelink cannot start with; the message names the variable."""


class Settings(BaseSettings):
    """Every knob Storelink reads. Each field maps to the environment variable of the same name in capitals.

    The README's configuration table is checked against this class by the test suite.
    """

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the database. Empty: a SQLite file in DATA_DIR (the embedded default).",
    )
    redis_url: str = Field(
        default="",
        description="Redis URL for queues, counters and locks. Empty: a private Redis is started for the run.",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Where the embedded default keeps its SQLite file, generated key and private Redis files.",
    )
    secret_keys: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Comma-separated Fernet keys; the first encrypts, all decrypt (rotation). "
            "Empty: a key is generated once and kept in DATA_DIR/secret.key."
        ),
    )
    log_level: str = Field(
        default="INFO", description="Log level for every process: DEBUG, INFO, WARNING, ERROR."
    )
    log_json: bool = Field(default=True, description="Write logs as one JSON object per line.")
    max_request_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, description="Largest request body the web app accepts, in bytes."
    )
    web_host: str = Field(default="127.0.0.1", description="Address `storelink up` binds the web app to.")
    web_port: int = Field(
        default=8000, ge=1, le=65535, description="Port `storelink up` binds the web app to."
    )
    web_workers: int = Field(default=2, ge=1, le=64, description="gunicorn worker processes.")
    web_threads: int = Field(
        default=4,
        ge=1,
        le=256,
        description=(
            "Request threads per gunicorn worker (gthread); concurrent live purchases in one worker commit "
            "together (group commit). More threads batch more purchases but lengthen the tail of CPU-bound "
            "reads such as showcases."
        ),
    )
    worker_queues: str = Field(
        default="orders,events,sync,bulk",
        description="Queues a worker listens on, most urgent first, comma-separated.",
    )
    job_timeout_seconds: int = Field(default=3600, gt=0, description="Longest a single job may run.")
    sweep_interval_seconds: int = Field(
        default=15,
        gt=0,
        description="How often the scheduler re-enqueues recorded work that has no live job.",
    )
    reconcile_interval_seconds: int = Field(
        default=900,
        gt=0,
        description="How often each installed merchant is reconciled with its store (stock drift, orders left "
        "accepted, webhook subscriptions, holds), as a sync run of kind reconcile.",
    )
    reconcile_accepted_after_seconds: int = Field(
        default=900,
        gt=0,
        description="How long an order may stay accepted before reconciliation looks it up in the store.",
    )
    stale_after_seconds: int = Field(
        default=60,
        gt=0,
        description="A running sync whose heartbeat is older than this is presumed dead and taken over.",
    )
    worker_lock_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description=(
            "How long a drain of store webhooks holds its shard's Redis lock and wake-up flag unrenewed: "
            "a worker lost mid-drain (killed, cut off from Redis) holds the webhooks of that shard's "
            "merchants back no longer than this."
        ),
    )
    sync_batch_size: int = Field(
        default=1000,
        ge=1,
        le=50000,
        description="Rows a catalog sync reads, diffs and writes per transaction.",
    )
    http_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout for calls to stores and feeds."
    )
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="Timeout of one outbound webhook request to the platform."
    )
    webhook_allow_private_urls: bool = Field(
        default=False,
        description="Allow webhook endpoints on private, loopback or link-local addresses (tests, sandbox).",
    )
    webhook_lease_margin_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description=(
            "Time beyond WEBHOOK_TIMEOUT_SECONDS that an attempt holds its delivery; "
            "an attempt not recorded by then is presumed lost (worker killed)."
        ),
    )
    webhook_sweep_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description=(
            "How long past due (or past its lease) a pending delivery waits "
            "before the sweeper enqueues it again."
        ),
    )
    webhook_endpoint_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description=(
            "Most attempts in flight to one endpoint at once; "
            "a delivery over the limit waits a few seconds, not counted as an attempt."
        ),
    )
    webhook_slow_after_seconds: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description=(
            "Endpoints whose recent attempts average this long or longer are delivered "
            "from the webhooks queue while a worker serves it."
        ),
    )
    feed_allow_files: bool = Field(
        default=False,
        description="Allow feed merchants whose feed is a local file path (file:// or a path): demos, tests.",
    )
    feed_allow_private_urls: bool = Field(
        default=False,
        description=(
            "Allow feed fetches (and their redirects) to private, loopback or link-local addresses "
            "(tests, sandbox). Else public addresses only."
        ),
    )
    public_url: str = Field(
        default="",
        description=(
            "Address at which stores reach Storelink, e.g. https://storelink.example: the base of OAuth "
            "redirects and store webhook subscriptions. Empty: store installs are refused "
            "(503 public_url_required), except against a store emulator (SHOPIFY_ADMIN_BASE_URL set), "
            "where the install request's address is used."
        ),
    )
    shopify_api_key: str = Field(
        default="", description="Client id (API key) of the Shopify app. Empty: Shopify installs are off."
    )
    shopify_api_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Client secret of the Shopify app: signs install callbacks, refreshes tokens, signs webhooks.",
    )
    shopify_scopes: str = Field(
        default="",
        description="Comma-separated access scopes asked for at install. Empty: the Shopify adapter's required scopes.",
    )
    shopify_admin_base_url: str = Field(
        default="",
        description=(
            "Address of the Shopify Admin API and OAuth endpoints for every shop. "
            "Empty: https://<shop>; the sandbox emulator's URL in tests and the demo."
        ),
    )

    affiliate_landing_url: str = Field(
        default=DEFAULT_AFFILIATE_LANDING_URL,
        description=(
            "Where `GET /l/{code}` sends a visitor: the product's page on the platform, with {product_id} "
            "(and optionally {variant_id}, {merchant_id}, {code}) and the {click_id} the platform carries "
            "to checkout."
        ),
    )
    affiliate_click_dedupe_seconds: int = Field(
        default=1800,
        ge=1,
        le=7 * 86400,
        description="Repeat visits of one visitor to one link within this many seconds count as one click.",
    )
    affiliate_click_flush_seconds: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="How often the scheduler writes the clicks buffered in Redis to the database.",
    )
    console_idle_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="A console session unused this many minutes ends (sign in again).",
    )
    console_session_hours: float = Field(
        default=12.0,
        gt=0,
        le=30 * 24,
        description="A console session ends this many hours after sign-in, however much it is used.",
    )
    console_sign_in_attempts: int = Field(
        default=5,
        ge=1,
        le=1000,
        description=(
            "Failed console sign-ins allowed per account in 15 minutes (four times as many per address); "
            "past that, sign-in answers 429 until the window ends."
        ),
    )
    console_link_minutes: int = Field(
        default=10,
        ge=1,
        le=24 * 60,
        description="How long the one-time sign-in link made at the end of a store install works.",
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("must be a URL such as postgresql+psycopg://user@host/db or sqlite:///path")
        if value.startswith("postgres://") or value.startswith("postgresql://"):
            # The psycopg 3 driver is the one installed.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("secret_keys")
    @classmethod
    def _secret_keys(cls, value: SecretStr) -> SecretStr:
        keys = [key.strip() for key in value.get_secret_value().split(",") if key.strip()]
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                # The value itself is never repeated: it is meant to be secret.
                raise ValueError(
                    f"key {position} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with `storelink keys generate`"
                ) from None
        return value

    @field_validator("public_url", "shopify_admin_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip()
        if value and (not value.startswith(("http://", "https://")) or "?" in value or "#" in value):
            raise ValueError(
                "must be an http(s) URL without query or fragment, e.g. https://storelink.example"
            )
        return value.rstrip("/")

    @field_validator("affiliate_landing_url")
    @classmethod
    def _landing_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL template, e.g. " + DEFAULT_AFFILIATE_LANDING_URL)
        try:
            names = {name for _, name, _, _ in Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"is not a valid template: {exc}") from None
        unknown = sorted(names - LANDING_PLACEHOLDERS)
        if unknown or any(not name for name in names):
            shown = ", ".join("{" + name + "}" for name in unknown) or "{}"
            raise ValueError(
                f"has unknown placeholders {shown}; use "
                + ", ".join("{" + n + "}" for n in sorted(LANDING_PLACEHOLDERS))
            )
        if "click_id" not in names:
            raise ValueError("must carry the {click_id} (e.g. ?sl_click={click_id})")
        return value

    def store_setting(self, env: str) -> str:
        """A setting a store adapter declares, by its environment variable: the field of that name when
        there is one here (validated at start), else the variable as the environment has it now."""
        name = env.lower()
        if name in type(self).model_fields:
            return str(getattr(self, name) or "")
        return os.environ.get(env, "").strip()

    @property
    def queue_names(self) -> list[str]:
        return [name.strip() for name in self.worker_queues.split(",") if name.strip()]

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'storelink.db'}"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment (and overrides), turning validation errors into one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "?"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
