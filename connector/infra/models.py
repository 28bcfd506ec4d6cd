"""SQLAlchemy models for the whole domain; unique constraints here carry Storelink's idempotency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ID = BigInteger().with_variant(Integer, "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType, list[Any]: JSONType}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- tenants -------------------------------------------------------------------------------------------


class PlatformClient(Timestamped, Base):
    """A platform application that calls the Platform API; it sees only its own merchants."""

    __tablename__ = "platform_clients"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    active: Mapped[bool] = mapped_column(default=True)


class Merchant(Timestamped, Base):
    """A tenant: one store connected to the platform. Credentials are encrypted (connector.infra.crypto)."""

    __tablename__ = "merchants"
    __table_args__ = (
        UniqueConstraint("kind", "store_ref"),
        # A unique index rather than a constraint: adding it never rebuilds the table on SQLite.
        Index("uq_merchants_name", "name", unique=True),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    store_ref: Mapped[str] = mapped_column(String(500))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="installed")  # installed | paused | uninstalled
    platform_client_id: Mapped[int | None] = mapped_column(ForeignKey("platform_clients.id"))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    inventory_buffer: Mapped[int] = mapped_column(default=0)
    location_ref: Mapped[str | None] = mapped_column(String(200))
    price_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    problem: Mapped[str | None] = mapped_column(Text)
    catalog_watermark: Mapped[datetime | None]


# --- catalog ------------------------------------------------------------------------------------------


class Product(Timestamped, Base):
    """A store product bound to its external id (the (merchant, external_id) pair is the binding)."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("merchant_id", "external_id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    vendor: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    media: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")
    source_updated_at: Mapped[datetime | None]
    content_hash: Mapped[str] = mapped_column(String(32))


class Variant(Timestamped, Base):
    __tablename__ = "variants"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        Index("ix_variants_product", "product_id"),
        Index("ix_variants_merchant_inventory_item", "merchant_id", "inventory_item_ref"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)
    sku: Mapped[str | None] = mapped_column(String(255))
    barcode: Mapped[str | None] = mapped_column(String(64))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    compare_at_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="active")
    inventory_item_ref: Mapped[str | None] = mapped_column(String(255))
    inventory_tracked: Mapped[bool] = mapped_column(default=True)
    options: Mapped[list[Any]] = mapped_column(default=list)
    content_hash: Mapped[str] = mapped_column(String(32))


class InventoryLevel(Base):
    """Store stock of a variant at a location. `version` grows on every accepted change."""

    __tablename__ = "inventory_levels"
    __table_args__ = (UniqueConstraint("variant_id", "location_ref"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    location_ref: Mapped[str] = mapped_column(String(255))
    available: Mapped[int] = mapped_column(default=0)
    source_updated_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- orders and reservations ---------------------------------------------------------------------------


class Order(Timestamped, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("platform_client_id", "idempotency_key"),
        Index("ix_orders_client_created", "platform_client_id", "id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    platform_client_id: Mapped[int | None] = mapped_column(ForeignKey("platform_clients.id"))
    platform_order_id: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="accepted")
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    buyer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    shipping_address: Mapped[dict[str, Any]] = mapped_column(default=dict)
    live_session_id: Mapped[int | None] = mapped_column(ForeignKey("live_sessions.id"))
    click_id: Mapped[str | None] = mapped_column(String(64))
    # The creator the sale is credited to (connector.affiliates.attribution): through a link's click or code,
    # or the creator's live session; null for an order nobody referred.
    attributed_via: Mapped[str | None] = mapped_column(String(10))  # click | code | live
    affiliate_link_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate_links.id"))
    affiliate_program_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate_programs.id"))
    affiliate_creator_ref: Mapped[str | None] = mapped_column(String(255))
    store_order_ref: Mapped[str | None] = mapped_column(String(255))
    store_order_name: Mapped[str | None] = mapped_column(String(255))
    push_started_at: Mapped[datetime | None]
    push_attempts: Mapped[int] = mapped_column(default=0)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"))
    live_pin_id: Mapped[int | None] = mapped_column(ForeignKey("live_pins.id"))
    quantity: Mapped[int]
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    discount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_quantity: Mapped[int] = mapped_column(default=0)
    external_line_ref: Mapped[str | None] = mapped_column(String(255))


class Reservation(Base):
    """Stock held for an order (or a live pin's allocation) until confirmed, released or expired."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_variant_state", "variant_id", "state"),
        Index("ix_reservations_state_expires", "state", "expires_at"),
        Index("ix_reservations_order", "order_id"),
        Index("ix_reservations_pin_state", "live_pin_id", "state"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    live_pin_id: Mapped[int | None] = mapped_column(ForeignKey("live_pins.id"))
    buyer_ref: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[int]
    state: Mapped[str] = mapped_column(
        String(20), default="active"
    )  # active | confirmed | released | expired
    expires_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]
    """When the hold stopped counting after it ended: a released or expired hold given back to its counter, or
    a confirmed one once the store's own stock level reflects the sale."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- live ---------------------------------------------------------------------------------------------------


class LiveSession(Timestamped, Base):
    __tablename__ = "live_sessions"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    creator_ref: Mapped[str | None] = mapped_column(String(255))
    affiliate_program_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate_programs.id"))
    title: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="scheduled")  # scheduled | live | ended
    scheduled_start: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class LivePin(Timestamped, Base):
    __tablename__ = "live_pins"
    __table_args__ = (UniqueConstraint("session_id", "variant_id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"))
    flash_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    allocation: Mapped[int]
    per_buyer_limit: Mapped[int | None]
    countdown_ends_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | ended
    low_stock_threshold: Mapped[int | None]
    low_stock_notified: Mapped[bool] = mapped_column(default=False, server_default=false())
    sold_out_notified: Mapped[bool] = mapped_column(default=False, server_default=false())
    ended_at: Mapped[datetime | None]


# --- affiliates (connector.affiliates owns these writes) -----------------------------------------------------


class AffiliateProgram(Timestamped, Base):
    """A merchant's commission program: `open` to every creator, or `targeted` at one named creator."""

    __tablename__ = "affiliate_programs"
    __table_args__ = (Index("ix_affiliate_programs_merchant_creator", "merchant_id", "creator_ref"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # open | targeted
    name: Mapped[str] = mapped_column(String(200))
    creator_ref: Mapped[str | None] = mapped_column(String(255))  # targeted only
    default_rate_bps: Mapped[int | None]  # open only: the rate of a product without a rate of its own
    attribution_window_seconds: Mapped[int] = mapped_column(default=7 * 86400)
    hold_seconds: Mapped[int] = mapped_column(default=30 * 86400)
    rate_lock_seconds: Mapped[int] = mapped_column(default=30 * 86400)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | ended
    ended_at: Mapped[datetime | None]


class AffiliateProgramRate(Base):
    __tablename__ = "affiliate_program_rates"
    __table_args__ = (UniqueConstraint("program_id", "product_id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("affiliate_programs.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    rate_bps: Mapped[int]


class AffiliateLink(Timestamped, Base):
    """A creator's link to a product: one per (creator, product); `code` is its public, unguessable name."""

    __tablename__ = "affiliate_links"
    __table_args__ = (
        UniqueConstraint("creator_ref", "product_id"),
        Index("ix_affiliate_links_merchant_creator", "merchant_id", "creator_ref"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("affiliate_programs.id"))
    creator_ref: Mapped[str] = mapped_column(String(255))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    locked_rate_bps: Mapped[int]
    locked_until: Mapped[datetime]


class AffiliateClick(Base):
    """A counted click (or view, tap) on a link; `visitor_hash` is a keyed hash, never a raw address."""

    __tablename__ = "affiliate_clicks"
    __table_args__ = (
        Index("ix_affiliate_clicks_link_occurred", "link_id", "occurred_at"),
        Index("ix_affiliate_clicks_link_visitor", "link_id", "visitor_hash", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("affiliate_links.id", ondelete="CASCADE"))
    click_id: Mapped[str] = mapped_column(String(64), unique=True)
    visitor_hash: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10), default="click")  # click | view | tap
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class AffiliatePayout(Base):
    """A payout the platform made to a creator, idempotent by its own id within the platform client."""

    __tablename__ = "affiliate_payouts"
    __table_args__ = (UniqueConstraint("platform_client_id", "platform_payout_id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    platform_client_id: Mapped[int | None] = mapped_column(ForeignKey("platform_clients.id"))
    platform_payout_id: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    creator_ref: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    entry_count: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommissionEntry(Base):
    """One line of the commission ledger, never edited but for its state: a reversal is an entry of its own.

    `attribution_ref` names what earned it (`link:<id>` or `live:<session id>`), so (order line, attribution,
    cause) is unique and a replayed order, refund or cancellation adds nothing.
    """

    __tablename__ = "commission_entries"
    __table_args__ = (
        UniqueConstraint("order_line_id", "attribution_ref", "cause"),
        Index("ix_commission_entries_creator_state", "creator_ref", "state"),
        Index("ix_commission_entries_merchant_created", "merchant_id", "created_at"),
        Index("ix_commission_entries_state_hold", "state", "hold_until"),
        Index("ix_commission_entries_order", "order_id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    creator_ref: Mapped[str] = mapped_column(String(255))
    program_id: Mapped[int] = mapped_column(ForeignKey("affiliate_programs.id"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate_links.id"))
    attribution_ref: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    kind: Mapped[str] = mapped_column(String(10))  # accrual | reversal
    cause: Mapped[str] = mapped_column(String(120))  # order | cancel | refund:<store refund id>
    reverses_entry_id: Mapped[int | None] = mapped_column(ForeignKey("commission_entries.id"))
    base_minor: Mapped[int] = mapped_column(BigInteger)  # net amount earned on (negative: given back)
    refunded_quantity: Mapped[int | None]
    rate_bps: Mapped[int]
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # signed
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending | approved | paid
    hold_until: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate_payouts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommissionTransition(Base):
    """The history of an entry's state: created (no `from_state`), approved, paid."""

    __tablename__ = "commission_transitions"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("commission_entries.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(10))
    to_state: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("affiliate_payouts.id"))


# --- showcases (connector.showcases owns these writes) ---------------------------------------------------------


class Showcase(Timestamped, Base):
    """A merchant's or a creator's ordered product set: a hand list, a rule, or a rule under a pinned hand list.

    `owner_key` (`merchant:<id>` or `creator:<client id>:<ref>`) makes handles unique per owner; `snapshot` is
    the visible set last announced, which the next refresh diffs against."""

    __tablename__ = "showcases"
    __table_args__ = (
        UniqueConstraint("owner_key", "handle"),
        Index("ix_showcases_client", "platform_client_id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    platform_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("platform_clients.id", ondelete="CASCADE")
    )
    owner_kind: Mapped[str] = mapped_column(String(10))  # merchant | creator
    owner_key: Mapped[str] = mapped_column(String(300))
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    creator_ref: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(200))
    handle: Mapped[str] = mapped_column(String(100))
    out_of_stock: Mapped[str] = mapped_column(String(10), default="hide")  # hide | sold_out
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    max_items: Mapped[int] = mapped_column(default=100)  # the most items a rule adds
    snapshot: Mapped[list[Any]] = mapped_column(default=list)


class ShowcaseItem(Base):
    """A hand-placed product of a showcase; `pinned` keeps it above a rule's products."""

    __tablename__ = "showcase_items"
    __table_args__ = (
        UniqueConstraint("showcase_id", "product_id"),
        Index("ix_showcase_items_product", "product_id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    showcase_id: Mapped[int] = mapped_column(ForeignKey("showcases.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    position: Mapped[int]
    pinned: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- outbound webhooks ---------------------------------------------------------------------------------


class WebhookEndpoint(Timestamped, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_client_enabled", "platform_client_id", "enabled"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    platform_client_id: Mapped[int | None] = mapped_column(ForeignKey("platform_clients.id"))
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    circuit_open_until: Mapped[datetime | None]


class EventPayload(Base):
    """A domain event, stored once, in the same transaction as the change that caused it."""

    __tablename__ = "event_payloads"
    __table_args__ = (Index("ix_event_payloads_merchant_type", "merchant_id", "type"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_<ulid-like>, the webhook-id
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(60))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("payload_id", "endpoint_id"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    payload_id: Mapped[str] = mapped_column(ForeignKey("event_payloads.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | succeeded | failed
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    duration_ms: Mapped[int] = mapped_column(default=0)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


# --- inbound events and sync runs -------------------------------------------------------------------------


class InboundEvent(Base):
    """A raw store webhook as received, deduplicated on the store's delivery id per merchant: two stores may
    use the same delivery ids, so the key is (source, delivery id, merchant)."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key", "merchant_id"),
        Index("ix_inbound_events_merchant_status", "merchant_id", "status"),
        # The drain's read: the pending deliveries of many merchants at once.
        Index(
            "ix_inbound_events_pending",
            "merchant_id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    triggered_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | processed | failed
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]


class SyncRun(Base):
    """One catalog, inventory or order sync: the durable record of work the queue only carries."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_status", "status"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # catalog | inventory | orders | reconcile
    full: Mapped[bool] = mapped_column(Boolean, default=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | succeeded | failed
    queue: Mapped[str] = mapped_column(String(20), default="sync")
    attempt: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(80))
    lease_token: Mapped[str | None] = mapped_column(String(40))
    heartbeat_at: Mapped[datetime | None]
    rows_read: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[int] = mapped_column(default=0)
    failed_rows: Mapped[int] = mapped_column(default=0)
    events_emitted: Mapped[int] = mapped_column(default=0)
    row_errors: Mapped[list[Any]] = mapped_column(default=list)
    diff: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    total: Mapped[int | None]  # rows the run will read, once known (its progress bar's end)
    since: Mapped[datetime | None]  # an orders resync: orders placed since then
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per-kind counts (connector.support.ops)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
