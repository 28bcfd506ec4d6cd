"""SQLAlchemy models of how a catalog is grouped: the store's collections, which products are in them, the
products' tags, and the commission rates a program sets per collection (the catalog sync writes the first
three in `connector.catalog.groups`; `connector.affiliates.programs` owns the rates)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connector.infra.models import ID, Base, Timestamped


class Collection(Timestamped, Base):
    """A merchant's store collection (or category), bound to the store's id for it like a product; it stays
    when no product is in it any more (program rates may name it)."""

    __tablename__ = "collections"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        Index("ix_collections_merchant_handle", "merchant_id", "handle"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    handle: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)


class ProductCollection(Base):
    """A product's place in a collection; `position` is the collection's place in the product's list."""

    __tablename__ = "product_collections"
    __table_args__ = (Index("ix_product_collections_collection", "collection_id"),)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    position: Mapped[int] = mapped_column(default=0)


class ProductTag(Base):
    """A product's tag as the store spells it; `key` (`connector.domain.catalog.tag_key`) is what matches."""

    __tablename__ = "product_tags"
    __table_args__ = (Index("ix_product_tags_merchant_key", "merchant_id", "key"),)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(255))


class AffiliateProgramCollectionRate(Base):
    """The rate a program pays on the products of one of its merchant's collections (below a product's own)."""

    __tablename__ = "affiliate_program_collection_rates"
    __table_args__ = (
        UniqueConstraint("program_id", "collection_id"),
        Index("ix_affiliate_program_collection_rates_collection", "collection_id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("affiliate_programs.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    rate_bps: Mapped[int]
