"""showcases and their hand-placed items; the visible set last announced

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 03:57:27.334091

A showcase belongs to a merchant or to a creator of a platform client; its handle is unique per owner. Items
are the hand-placed products (pinned above a rule's when the showcase has one).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import connector.infra.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "showcases",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("platform_client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("owner_kind", sa.String(length=10), nullable=False),
        sa.Column("owner_key", sa.String(length=300), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("creator_ref", sa.String(length=255), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("handle", sa.String(length=100), nullable=False),
        sa.Column("out_of_stock", sa.String(length=10), nullable=False),
        sa.Column(
            "rule",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("max_items", sa.Integer(), nullable=False),
        sa.Column(
            "snapshot",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_showcases_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["platform_client_id"],
            ["platform_clients.id"],
            name=op.f("fk_showcases_platform_client_id_platform_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_showcases")),
        sa.UniqueConstraint("owner_key", "handle", name=op.f("uq_showcases_owner_key_handle")),
    )
    with op.batch_alter_table("showcases", schema=None) as batch_op:
        batch_op.create_index("ix_showcases_client", ["platform_client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_showcases_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "showcase_items",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("showcase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
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
    with op.batch_alter_table("showcase_items", schema=None) as batch_op:
        batch_op.create_index("ix_showcase_items_product", ["product_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("showcase_items", schema=None) as batch_op:
        batch_op.drop_index("ix_showcase_items_product")

    op.drop_table("showcase_items")
    with op.batch_alter_table("showcases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_showcases_merchant_id"))
        batch_op.drop_index("ix_showcases_client")

    op.drop_table("showcases")
