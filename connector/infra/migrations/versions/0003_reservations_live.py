"""reservations and live pins: settlement marker, expiry index, pin stock-alert state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_reservations_state_expires", ["state", "expires_at"], unique=False)
        batch_op.create_index("ix_reservations_order", ["order_id"], unique=False)
        batch_op.create_index("ix_reservations_pin_state", ["live_pin_id", "state"], unique=False)
    with op.batch_alter_table("live_pins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("low_stock_threshold", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("low_stock_notified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("sold_out_notified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_client_created", ["platform_client_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_client_created")
    with op.batch_alter_table("live_pins", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
        batch_op.drop_column("sold_out_notified")
        batch_op.drop_column("low_stock_notified")
        batch_op.drop_column("low_stock_threshold")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_reservations_pin_state")
        batch_op.drop_index("ix_reservations_order")
        batch_op.drop_index("ix_reservations_state_expires")
        batch_op.drop_column("settled_at")
