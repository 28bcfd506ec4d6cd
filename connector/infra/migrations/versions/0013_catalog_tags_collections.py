"""products carry tags and collections; programs rate collections

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 06:45:09.181842

New tables only, nothing rebuilt. Products stored before carry no tags or collections until the next full catalog
pass: the fingerprint of a product with tags or collections differs from the one stored, so the pass
rewrites exactly those products.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.infra.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("handle", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", connector.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_collections_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint(
            "merchant_id", "external_id", name=op.f("uq_collections_merchant_id_external_id")
        ),
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.create_index("ix_collections_merchant_handle", ["merchant_id", "handle"], unique=False)

    op.create_table(
        "affiliate_program_collection_rates",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rate_bps", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_affiliate_program_collection_rates_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["affiliate_programs.id"],
            name=op.f("fk_affiliate_program_collection_rates_program_id_affiliate_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_program_collection_rates")),
        sa.UniqueConstraint(
            "program_id",
            "collection_id",
            name=op.f("uq_affiliate_program_collection_rates_program_id_collection_id"),
        ),
    )
    with op.batch_alter_table("affiliate_program_collection_rates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_affiliate_program_collection_rates_collection", ["collection_id"], unique=False
        )

    op.create_table(
        "product_collections",
        sa.Column(
            "product_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column(
            "collection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_product_collections_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_collections_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("product_id", "collection_id", name=op.f("pk_product_collections")),
    )
    with op.batch_alter_table("product_collections", schema=None) as batch_op:
        batch_op.create_index("ix_product_collections_collection", ["collection_id"], unique=False)

    op.create_table(
        "product_tags",
        sa.Column(
            "product_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_product_tags_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_tags_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("product_id", "key", name=op.f("pk_product_tags")),
    )
    with op.batch_alter_table("product_tags", schema=None) as batch_op:
        batch_op.create_index("ix_product_tags_merchant_key", ["merchant_id", "key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("product_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_product_tags_merchant_key")

    op.drop_table("product_tags")
    with op.batch_alter_table("product_collections", schema=None) as batch_op:
        batch_op.drop_index("ix_product_collections_collection")

    op.drop_table("product_collections")
    with op.batch_alter_table("affiliate_program_collection_rates", schema=None) as batch_op:
        batch_op.drop_index("ix_affiliate_program_collection_rates_collection")

    op.drop_table("affiliate_program_collection_rates")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index("ix_collections_merchant_handle")

    op.drop_table("collections")
