"""inbound_events: deliveries deduplicated per merchant, on (source, dedupe_key, merchant_id)

Two stores of one kind may send the same delivery id (each store numbers its own deliveries), so the store's
id is unique only within one merchant. Upgrading never meets a conflict: every existing row was unique on
(source, dedupe_key) and so is unique on the wider key. Downgrading restores the narrower key and must first
remove deliveries that share a (source, dedupe_key) with an older one of another merchant: the oldest row of
each such group is kept, the later ones are deleted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD: str = "uq_inbound_events_source_dedupe_key"
NEW: str = "uq_inbound_events_source_dedupe_key_merchant_id"


def upgrade() -> None:
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_constraint(OLD, type_="unique")
        batch_op.create_unique_constraint(NEW, ["source", "dedupe_key", "merchant_id"])


def downgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM inbound_events WHERE id NOT IN "
            "(SELECT MIN(id) FROM inbound_events GROUP BY source, dedupe_key)"
        )
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_constraint(NEW, type_="unique")
        batch_op.create_unique_constraint(OLD, ["source", "dedupe_key"])
