"""a live session may name the commission program its creator's sales earn under

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 04:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "affiliate_program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_live_sessions_affiliate_program_id_affiliate_programs"),
            "affiliate_programs",
            ["affiliate_program_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_live_sessions_affiliate_program_id_affiliate_programs"), type_="foreignkey"
        )
        batch_op.drop_column("affiliate_program_id")
