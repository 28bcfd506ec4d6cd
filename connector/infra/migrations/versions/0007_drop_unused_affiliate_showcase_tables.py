"""drop the affiliate and showcase tables no code uses: the commission ledger and showcases define their own

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:30:00.000000

The tables (and `order_lines.affiliate_link_id`) were created empty by the first schema and never written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.infra.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_constraint("fk_order_lines_affiliate_link_id_affiliate_links", type_="foreignkey")
        batch_op.drop_column("affiliate_link_id")
    op.drop_table("commissions")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clicks_link_id"))
    op.drop_table("clicks")
    op.drop_table("showcase_items")
    op.drop_table("showcases")
    op.drop_table("affiliate_links")


def downgrade() -> None:
    op.create_table(
        "affiliate_links",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("creator_ref", sa.String(length=255), nullable=False),
        sa.Column("commission_rate_bps", sa.Integer(), nullable=False),
        sa.Column("return_window_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_affiliate_links_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_affiliate_links_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_links")),
        sa.UniqueConstraint("code", name=op.f("uq_affiliate_links_code")),
    )
    op.create_table(
        "showcases",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("owner_kind", sa.String(length=20), nullable=False),
        sa.Column("owner_ref", sa.String(length=255), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_showcases_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_showcases")),
        sa.UniqueConstraint(
            "owner_kind", "owner_ref", "slug", name=op.f("uq_showcases_owner_kind_owner_ref_slug")
        ),
    )
    op.create_table(
        "showcase_items",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("showcase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_showcase_items_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["showcase_id"],
            ["showcases.id"],
            name=op.f("fk_showcase_items_showcase_id_showcases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_showcase_items")),
        sa.UniqueConstraint(
            "showcase_id", "product_id", name=op.f("uq_showcase_items_showcase_id_product_id")
        ),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("clicked_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("visitor_hash", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"], ["affiliate_links.id"], name=op.f("fk_clicks_link_id_affiliate_links")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")),
    )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clicks_link_id"), ["link_id"], unique=False)
    op.create_table(
        "commissions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_ref", sa.String(length=100), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approve_after", connector.infra.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"], ["affiliate_links.id"], name=op.f("fk_commissions_link_id_affiliate_links")
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"], ["order_lines.id"], name=op.f("fk_commissions_order_line_id_order_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commissions")),
        sa.UniqueConstraint(
            "order_line_id",
            "link_id",
            "entry_ref",
            name=op.f("uq_commissions_order_line_id_link_id_entry_ref"),
        ),
    )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "affiliate_link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            "fk_order_lines_affiliate_link_id_affiliate_links",
            "affiliate_links",
            ["affiliate_link_id"],
            ["id"],
        )
