"""SQLAlchemy models of the web console: its users, the merchants each may see, and one-time sign-in links.

`connector.merchants.users` owns these writes. The tables share `Base` (and so the metadata migrations compare
against) with `connector.infra.models`; whatever needs the whole schema imports this module too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connector.infra.models import ID, Base, utcnow


class ConsoleUser(Base):
    """A person who signs in to the console: `support` sees every merchant, `merchant` only those linked."""

    __tablename__ = "console_users"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # support | merchant
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    signed_in_at: Mapped[datetime | None]


class ConsoleUserMerchant(Base):
    """A merchant a `merchant` user may see."""

    __tablename__ = "console_user_merchants"
    __table_args__ = (UniqueConstraint("user_id", "merchant_id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)


class ConsoleLink(Base):
    """A one-time sign-in link for one merchant's page (made when a store install completes): only the
    SHA-256 of its token is kept; it works once, before `expires_at`."""

    __tablename__ = "console_links"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
