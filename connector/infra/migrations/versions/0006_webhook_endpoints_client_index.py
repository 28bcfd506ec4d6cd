"""webhook endpoints: index by platform client, so the fan-out reads only the endpoints an event may reach

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:00:00.000000

Existing endpoints are kept as they are, also those of a client with more endpoints, or more or longer event
types, than the API now accepts: the limits apply when endpoints are created or changed.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_endpoints_client_enabled", ["platform_client_id", "enabled"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_client_enabled")
