"""the problem list; sync runs of every kind with a total, a since and per-kind counts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00.000000

`problems` holds keyed problems of merchants and outbound endpoints, open (with a unique `open_key`) or
cleared (kept as history). `sync_runs` gains `total` (the progress bar's end), `since` (an orders resync's
start) and `details` (counts of the inventory, orders and reconcile kinds).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import connector.infra.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = connector.infra.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "problems",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=True),
        sa.Column("endpoint_id", ID, nullable=True),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("open_key", sa.String(length=80), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.Column("raised_at", UTC, nullable=True),
        sa.Column("cleared_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_problems_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_problems_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problems")),
        sa.UniqueConstraint("open_key", name=op.f("uq_problems_open_key")),
    )
    op.create_index("ix_problems_merchant_cleared", "problems", ["merchant_id", "cleared_at"], unique=False)
    op.create_index("ix_problems_endpoint", "problems", ["endpoint_id"], unique=False)
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("since", UTC, nullable=True))
        batch_op.add_column(
            sa.Column(
                "details",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("details")
        batch_op.drop_column("since")
        batch_op.drop_column("total")
    op.drop_index("ix_problems_endpoint", table_name="problems")
    op.drop_index("ix_problems_merchant_cleared", table_name="problems")
    op.drop_table("problems")
