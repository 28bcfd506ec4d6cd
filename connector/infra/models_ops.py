"""SQLAlchemy models of operations: the problem list (keyed problems that raise and clear themselves).

Kept apart from `connector.infra.models` (same `Base`, same metadata): importing this module adds its tables
to `Base.metadata`, so the migration environment and the schema checks import it too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connector.infra.models import ID, Base, utcnow


class Problem(Base):
    """One occurrence of a keyed problem of a merchant or of an outbound endpoint, from first seen to cleared.

    `open_key` (`<key>:m<merchant id>` or `<key>:e<endpoint id>`) is set while the occurrence is open and
    unique, so a cause seen again counts on the open row; clearing sets `cleared_at` and empties `open_key`,
    and the row stays as history. A row whose cause was not yet seen often or long enough to show
    (`raised_at` empty) is deleted when the cause goes away."""

    __tablename__ = "problems"
    __table_args__ = (
        Index("ix_problems_merchant_cleared", "merchant_id", "cleared_at"),
        Index("ix_problems_endpoint", "endpoint_id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    open_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(default=0)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    raised_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
