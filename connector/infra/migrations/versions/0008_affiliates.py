"""affiliate programs, links, clicks, payouts and the commission ledger; the attribution of an order

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 03:42:13.619772

Commission entries are never edited but for their state (history in `commission_transitions`); (order line,
attribution, cause) is unique so replays add nothing. Orders gain nullable attribution columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.infra.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "affiliate_payouts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("platform_client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("platform_payout_id", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("creator_ref", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_client_id"],
            ["platform_clients.id"],
            name=op.f("fk_affiliate_payouts_platform_client_id_platform_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_payouts")),
        sa.UniqueConstraint(
            "platform_client_id",
            "platform_payout_id",
            name=op.f("uq_affiliate_payouts_platform_client_id_platform_payout_id"),
        ),
    )
    op.create_table(
        "affiliate_programs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("creator_ref", sa.String(length=255), nullable=True),
        sa.Column("default_rate_bps", sa.Integer(), nullable=True),
        sa.Column("attribution_window_seconds", sa.Integer(), nullable=False),
        sa.Column("hold_seconds", sa.Integer(), nullable=False),
        sa.Column("rate_lock_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("ended_at", connector.infra.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_affiliate_programs_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_programs")),
    )
    with op.batch_alter_table("affiliate_programs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_affiliate_programs_merchant_creator", ["merchant_id", "creator_ref"], unique=False
        )

    op.create_table(
        "affiliate_program_rates",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rate_bps", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_affiliate_program_rates_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["affiliate_programs.id"],
            name=op.f("fk_affiliate_program_rates_program_id_affiliate_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_program_rates")),
        sa.UniqueConstraint(
            "program_id", "product_id", name=op.f("uq_affiliate_program_rates_program_id_product_id")
        ),
    )
    op.create_table(
        "affiliate_links",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("creator_ref", sa.String(length=255), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("variant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("locked_rate_bps", sa.Integer(), nullable=False),
        sa.Column("locked_until", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_affiliate_links_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_affiliate_links_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["affiliate_programs.id"],
            name=op.f("fk_affiliate_links_program_id_affiliate_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name=op.f("fk_affiliate_links_variant_id_variants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_links")),
        sa.UniqueConstraint("code", name=op.f("uq_affiliate_links_code")),
        sa.UniqueConstraint(
            "creator_ref", "product_id", name=op.f("uq_affiliate_links_creator_ref_product_id")
        ),
    )
    with op.batch_alter_table("affiliate_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_affiliate_links_merchant_creator", ["merchant_id", "creator_ref"], unique=False
        )

    op.create_table(
        "affiliate_clicks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("click_id", sa.String(length=64), nullable=False),
        sa.Column("visitor_hash", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("occurred_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["affiliate_links.id"],
            name=op.f("fk_affiliate_clicks_link_id_affiliate_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_clicks")),
        sa.UniqueConstraint("click_id", name=op.f("uq_affiliate_clicks_click_id")),
    )
    with op.batch_alter_table("affiliate_clicks", schema=None) as batch_op:
        batch_op.create_index("ix_affiliate_clicks_link_occurred", ["link_id", "occurred_at"], unique=False)
        batch_op.create_index(
            "ix_affiliate_clicks_link_visitor", ["link_id", "visitor_hash", "occurred_at"], unique=False
        )

    op.create_table(
        "commission_entries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("creator_ref", sa.String(length=255), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("attribution_ref", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("cause", sa.String(length=120), nullable=False),
        sa.Column("reverses_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("base_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_quantity", sa.Integer(), nullable=True),
        sa.Column("rate_bps", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("hold_until", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_at", connector.infra.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", connector.infra.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payout_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"], ["affiliate_links.id"], name=op.f("fk_commission_entries_link_id_affiliate_links")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_commission_entries_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_commission_entries_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"],
            ["order_lines.id"],
            name=op.f("fk_commission_entries_order_line_id_order_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["affiliate_payouts.id"],
            name=op.f("fk_commission_entries_payout_id_affiliate_payouts"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["affiliate_programs.id"],
            name=op.f("fk_commission_entries_program_id_affiliate_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["commission_entries.id"],
            name=op.f("fk_commission_entries_reverses_entry_id_commission_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_entries")),
        sa.UniqueConstraint(
            "order_line_id",
            "attribution_ref",
            "cause",
            name=op.f("uq_commission_entries_order_line_id_attribution_ref_cause"),
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_commission_entries_public_id")),
    )
    with op.batch_alter_table("commission_entries", schema=None) as batch_op:
        batch_op.create_index("ix_commission_entries_creator_state", ["creator_ref", "state"], unique=False)
        batch_op.create_index(
            "ix_commission_entries_merchant_created", ["merchant_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_commission_entries_order", ["order_id"], unique=False)
        batch_op.create_index("ix_commission_entries_state_hold", ["state", "hold_until"], unique=False)

    op.create_table(
        "commission_transitions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_state", sa.String(length=10), nullable=True),
        sa.Column("to_state", sa.String(length=10), nullable=False),
        sa.Column("at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payout_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["commission_entries.id"],
            name=op.f("fk_commission_transitions_entry_id_commission_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["affiliate_payouts.id"],
            name=op.f("fk_commission_transitions_payout_id_affiliate_payouts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_transitions")),
    )
    with op.batch_alter_table("commission_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commission_transitions_entry_id"), ["entry_id"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attributed_via", sa.String(length=10), nullable=True))
        batch_op.add_column(
            sa.Column(
                "affiliate_link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "affiliate_program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("affiliate_creator_ref", sa.String(length=255), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_orders_affiliate_program_id_affiliate_programs"),
            "affiliate_programs",
            ["affiliate_program_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_orders_affiliate_link_id_affiliate_links"),
            "affiliate_links",
            ["affiliate_link_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_orders_affiliate_link_id_affiliate_links"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_orders_affiliate_program_id_affiliate_programs"), type_="foreignkey"
        )
        batch_op.drop_column("affiliate_creator_ref")
        batch_op.drop_column("affiliate_program_id")
        batch_op.drop_column("affiliate_link_id")
        batch_op.drop_column("attributed_via")

    with op.batch_alter_table("commission_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commission_transitions_entry_id"))

    op.drop_table("commission_transitions")
    with op.batch_alter_table("commission_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_commission_entries_state_hold")
        batch_op.drop_index("ix_commission_entries_order")
        batch_op.drop_index("ix_commission_entries_merchant_created")
        batch_op.drop_index("ix_commission_entries_creator_state")

    op.drop_table("commission_entries")
    with op.batch_alter_table("affiliate_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_affiliate_clicks_link_visitor")
        batch_op.drop_index("ix_affiliate_clicks_link_occurred")

    op.drop_table("affiliate_clicks")
    with op.batch_alter_table("affiliate_links", schema=None) as batch_op:
        batch_op.drop_index("ix_affiliate_links_merchant_creator")

    op.drop_table("affiliate_links")
    op.drop_table("affiliate_program_rates")
    with op.batch_alter_table("affiliate_programs", schema=None) as batch_op:
        batch_op.drop_index("ix_affiliate_programs_merchant_creator")

    op.drop_table("affiliate_programs")
    op.drop_table("affiliate_payouts")
