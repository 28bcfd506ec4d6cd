"""variants: index on (merchant_id, inventory_item_ref), for stock webhooks that name an inventory item

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_variants_merchant_inventory_item", ["merchant_id", "inventory_item_ref"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_index("ix_variants_merchant_inventory_item")
