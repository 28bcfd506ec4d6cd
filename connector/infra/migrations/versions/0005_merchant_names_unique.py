"""merchants: names are unique; later merchants sharing a name are renamed NAME-ID first

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:45:00.000000

A database that already holds merchants with the same name keeps the name on the oldest of them (lowest id);
each later one is renamed to `NAME-ID` (its own id appended; `NAME-ID-2`, ... if that is taken too), so every name
stays recognizable and `merchants show NAME-ID` finds it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_CHARS = 200


def _rename_duplicates() -> None:
    merchants = sa.table("merchants", sa.column("id", sa.Integer), sa.column("name", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(merchants.c.id, merchants.c.name).order_by(merchants.c.id)).all()
    taken = {name for _, name in rows}
    kept: set[str] = set()
    for merchant_id, name in rows:
        if name not in kept:
            kept.add(name)
            continue
        suffix, tries = f"-{merchant_id}", 1
        candidate = name[: NAME_CHARS - len(suffix)] + suffix
        while candidate in taken:
            tries += 1
            suffix = f"-{merchant_id}-{tries}"
            candidate = name[: NAME_CHARS - len(suffix)] + suffix
        taken.add(candidate)
        kept.add(candidate)
        conn.execute(merchants.update().where(merchants.c.id == merchant_id).values(name=candidate))


def upgrade() -> None:
    _rename_duplicates()
    # An index, not a table constraint: on SQLite a constraint means rebuilding `merchants`, whose rows are
    # the parents of nearly every other table.
    op.create_index("uq_merchants_name", "merchants", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_merchants_name", table_name="merchants")
