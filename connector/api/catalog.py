"""Catalog reads of the Platform API: merchants, products (with their tags and collections), variants, with
price and sellable stock, and the merchants' collections.

Every query is scoped to the calling client's merchants (`common.visible_merchants`): another client's record
is a 404, never a 403. A page of products costs six queries whatever its size: the products, their
variants, the stock levels at each merchant's selling location, the units held by active reservations, and
the products' tags and collections.
Sellable stock is `connector.catalog.levels.sellable`: store quantity minus active reservations minus the
merchant's buffer, never below zero, and null when the store does not track the variant's stock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.api.common import (
    PageQuery,
    api_runtime,
    as_utc,
    authenticate,
    decode_id_cursor,
    encode_cursor,
    json_response,
    parse_query,
    require_client,
    visible_merchants,
)
from connector.api.openapi import MAX_ID, doc
from connector.catalog import groups, levels
from connector.domain.catalog import ProductStatus
from connector.domain.errors import NotFoundError
from connector.infra import bulk_insert
from connector.infra.models import Merchant, Product, Variant
from connector.infra.models_groups import Collection as CollectionRow

logger = logging.getLogger(__name__)

bp = Blueprint("api_catalog", __name__)
bp.before_request(require_client)

TAG = "catalog"

# --- representations -------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Price(_Out):
    """An amount in integer minor units of an ISO 4217 currency (cents for USD, yen for JPY)."""

    amount_minor: int = Field(description="Integer minor units; never a float.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")


class MerchantOut(_Out):
    """A merchant store connected to the platform."""

    id: int
    name: str
    kind: str = Field(description="Store kind, e.g. shopify, walmart, feed.")
    store_ref: str = Field(description="The store's own identifier (e.g. its shop domain).")
    status: str = Field(description="installed, paused or uninstalled.")
    created_at: datetime
    updated_at: datetime


class MerchantPage(_Out):
    data: list[MerchantOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class VariantOut(_Out):
    """One sellable unit of a product, with its price and sellable stock."""

    id: int
    product_id: int
    merchant_id: int
    external_id: str = Field(description="The store's id of the variant (text: store ids can exceed 2^53).")
    title: str
    sku: str | None
    barcode: str | None
    status: str
    price: Price
    compare_at_price: Price | None
    options: list[Any]
    inventory_tracked: bool
    sellable: int | None = Field(
        description=(
            "Units the platform may sell now: store quantity minus active reservations minus the merchant's "
            "buffer, never below zero; null when the store does not track this variant's stock."
        )
    )
    updated_at: datetime


class CollectionOut(_Out):
    """A collection (or category) of a merchant's store."""

    id: int = Field(description="Storelink's id: what a program's `collection_rates` name.")
    merchant_id: int
    external_id: str = Field(description="The store's id of the collection (or of the category path).")
    handle: str = Field(description="The collection's URL name in the store: what a showcase rule names.")
    title: str


class CollectionPage(_Out):
    data: list[CollectionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ProductOut(_Out):
    """A product of a merchant's catalog, with its variants, tags and collections."""

    id: int
    merchant_id: int
    external_id: str
    title: str
    description: str
    vendor: str | None
    url: str | None
    media: list[Any]
    status: str
    source_updated_at: datetime | None = Field(description="When the store last changed the product.")
    created_at: datetime
    updated_at: datetime
    tags: list[str] = Field(description="The store's tags of the product, as spelled there, in order.")
    collections: list[CollectionOut] = Field(description="The collections it is in, in the store's order.")
    variants: list[VariantOut]


class ProductPage(_Out):
    data: list[ProductOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# --- query parameters ------------------------------------------------------------------------------------


class MerchantsQuery(PageQuery):
    """Merchants of the calling client, by id."""


class CollectionsQuery(PageQuery):
    """Collections of the calling client's merchants, by id."""

    merchant_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only this merchant's collections."
    )
    handle: str | None = Field(
        default=None, min_length=1, max_length=255, description="Only collections with this handle."
    )


class ProductsQuery(PageQuery):
    """Products of the calling client's merchants, by id; the filters combine."""

    merchant_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only this merchant's products."
    )
    status: ProductStatus | None = Field(default=None, description="Only products in this status.")
    updated_since: datetime | None = Field(
        default=None,
        description="Only products changed at or after this instant (ISO 8601; UTC if no offset).",
    )
    sku: str | None = Field(
        default=None, min_length=1, max_length=255, description="Only products with a variant of this SKU."
    )
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Only products with this tag (however its case is spelled).",
    )
    collection_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only products in this collection."
    )

    @field_validator("updated_since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)


# --- queries ---------------------------------------------------------------------------------------------


def _price(minor: int | None, currency: str) -> Price | None:
    return None if minor is None else Price(amount_minor=minor, currency=currency)


def _variant(variant: Variant, sellable: int | None) -> VariantOut:
    return VariantOut(
        id=variant.id,
        product_id=variant.product_id,
        merchant_id=variant.merchant_id,
        external_id=variant.external_id,
        title=variant.title,
        sku=variant.sku,
        barcode=variant.barcode,
        status=variant.status,
        price=Price(amount_minor=variant.price_minor, currency=variant.currency),
        compare_at_price=_price(variant.compare_at_minor, variant.currency),
        options=list(variant.options or []),
        inventory_tracked=variant.inventory_tracked,
        sellable=sellable,
        updated_at=variant.updated_at,
    )


def _products(session: Session, products: Sequence[Product]) -> list[ProductOut]:
    """Representations of `products` with their variants and stock (three queries for the whole batch)."""
    if not products:
        return []
    dialect = session.get_bind().dialect.name
    variants = session.scalars(
        select(Variant)
        .where(bulk_insert.in_values(dialect, Variant.product_id, [product.id for product in products]))
        .order_by(Variant.product_id, Variant.id)
    ).all()
    stock = levels.sellable_by_variant(session, variants)
    by_product: dict[int, list[VariantOut]] = {}
    for variant in variants:
        by_product.setdefault(variant.product_id, []).append(_variant(variant, stock[variant.id]))
    grouped = groups.read(session, [product.id for product in products])
    return [
        ProductOut(
            id=product.id,
            merchant_id=product.merchant_id,
            external_id=product.external_id,
            title=product.title,
            description=product.description,
            vendor=product.vendor,
            url=product.url,
            media=list(product.media or []),
            status=product.status,
            source_updated_at=product.source_updated_at,
            created_at=product.created_at,
            updated_at=product.updated_at,
            tags=grouped[product.id].tags,
            collections=[_collection(found) for found in grouped[product.id].collections],
            variants=by_product.get(product.id, []),
        )
        for product in products
    ]


def _collection(found: groups.StoredCollection | CollectionRow) -> CollectionOut:
    return CollectionOut(
        id=found.id,
        merchant_id=found.merchant_id,
        external_id=found.external_id,
        handle=found.handle,
        title=found.title,
    )


def _shown_ref(store_ref: str) -> str:
    """A store_ref that is a URL without its user:password@ and query string (a merchant stored before they
    were moved to its encrypted credentials may still have them); anything else as it is."""
    parts = urlsplit(store_ref)
    if not parts.scheme or not parts.netloc:
        return store_ref
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", parts.fragment))


def _merchant(merchant: Merchant) -> MerchantOut:
    return MerchantOut(
        id=merchant.id,
        name=merchant.name,
        kind=merchant.kind,
        store_ref=_shown_ref(merchant.store_ref),
        status=merchant.status,
        created_at=merchant.created_at,
        updated_at=merchant.updated_at,
    )


# --- routes ----------------------------------------------------------------------------------------------


@bp.get("/merchants")
@doc(summary="List merchants", tags=[TAG], query=MerchantsQuery, responses={200: MerchantPage})
def list_merchants() -> Response:
    """The calling client's merchants, oldest first, `limit` at a time."""
    params = parse_query(MerchantsQuery)
    after = decode_id_cursor("merchants", params.cursor)
    client = authenticate()
    with api_runtime().db.session() as session:
        query = (
            select(Merchant)
            .where(Merchant.id.in_(visible_merchants(session, client)))
            .order_by(Merchant.id)
            .limit(params.limit + 1)
        )
        if after is not None:
            query = query.where(Merchant.id > after)
        rows = session.scalars(query).all()
        page = [_merchant(merchant) for merchant in rows[: params.limit]]
    next_cursor = encode_cursor("merchants", [page[-1].id]) if len(rows) > params.limit else None
    return json_response(MerchantPage(data=page, next_cursor=next_cursor))


@bp.get("/merchants/<id:merchant_id>")
@doc(summary="Get a merchant", tags=[TAG], responses={200: MerchantOut, 404: None})
def get_merchant(merchant_id: int) -> Response:
    """One of the calling client's merchants."""
    client = authenticate()
    with api_runtime().db.session() as session:
        merchant = session.scalar(
            select(Merchant).where(
                Merchant.id == merchant_id, Merchant.id.in_(visible_merchants(session, client))
            )
        )
        if merchant is None:
            raise NotFoundError(f"merchant {merchant_id} not found", code="merchant_not_found")
        return json_response(_merchant(merchant))


@bp.get("/products")
@doc(summary="List products", tags=[TAG], query=ProductsQuery, responses={200: ProductPage})
def list_products() -> Response:
    """Products of the calling client's merchants with their variants, prices and sellable stock, by id.

    To follow changes, remember when a full pass started and pass it as `updated_since` on the next one.
    """
    params = parse_query(ProductsQuery)
    after = decode_id_cursor("products", params.cursor)
    client = authenticate()
    with api_runtime().db.session() as session:
        query = (
            select(Product)
            .where(Product.merchant_id.in_(visible_merchants(session, client)))
            .order_by(Product.id)
            .limit(params.limit + 1)
        )
        if after is not None:
            query = query.where(Product.id > after)
        if params.merchant_id is not None:
            query = query.where(Product.merchant_id == params.merchant_id)
        if params.status is not None:
            query = query.where(Product.status == params.status.value)
        if params.updated_since is not None:
            query = query.where(Product.updated_at >= params.updated_since)
        if params.sku is not None:
            query = query.where(Product.id.in_(select(Variant.product_id).where(Variant.sku == params.sku)))
        if params.tag is not None:
            query = query.where(Product.id.in_(groups.tag_filter(None, params.tag)))
        if params.collection_id is not None:
            query = query.where(
                Product.id.in_(groups.collection_filter(None, collection_id=params.collection_id))
            )
        rows = session.scalars(query).all()
        page = _products(session, rows[: params.limit])
    next_cursor = encode_cursor("products", [page[-1].id]) if len(rows) > params.limit else None
    logger.debug("products listed", extra={"client_id": client.id, "count": len(page)})
    return json_response(ProductPage(data=page, next_cursor=next_cursor))


@bp.get("/products/<id:product_id>")
@doc(summary="Get a product", tags=[TAG], responses={200: ProductOut, 404: None})
def get_product(product_id: int) -> Response:
    """One product with its variants, prices and sellable stock."""
    client = authenticate()
    with api_runtime().db.session() as session:
        product = session.scalar(
            select(Product).where(
                Product.id == product_id, Product.merchant_id.in_(visible_merchants(session, client))
            )
        )
        if product is None:
            raise NotFoundError(f"product {product_id} not found", code="product_not_found")
        (body,) = _products(session, [product])
    return json_response(body)


@bp.get("/collections")
@doc(summary="List collections", tags=[TAG], query=CollectionsQuery, responses={200: CollectionPage})
def list_collections() -> Response:
    """Collections of the calling client's merchants, by id, as the catalog sync found them in the stores
    (a collection stays listed when its last product leaves it)."""
    params = parse_query(CollectionsQuery)
    after = decode_id_cursor("collections", params.cursor)
    client = authenticate()
    with api_runtime().db.session() as session:
        query = (
            select(CollectionRow)
            .where(CollectionRow.merchant_id.in_(visible_merchants(session, client)))
            .order_by(CollectionRow.id)
            .limit(params.limit + 1)
        )
        if after is not None:
            query = query.where(CollectionRow.id > after)
        if params.merchant_id is not None:
            query = query.where(CollectionRow.merchant_id == params.merchant_id)
        if params.handle is not None:
            query = query.where(CollectionRow.handle == params.handle.strip().lower())
        rows = session.scalars(query).all()
        page = [_collection(found) for found in rows[: params.limit]]
    next_cursor = encode_cursor("collections", [page[-1].id]) if len(rows) > params.limit else None
    return json_response(CollectionPage(data=page, next_cursor=next_cursor))


@bp.get("/variants/<id:variant_id>")
@doc(summary="Get a variant", tags=[TAG], responses={200: VariantOut, 404: None})
def get_variant(variant_id: int) -> Response:
    """One variant with its price and sellable stock."""
    client = authenticate()
    with api_runtime().db.session() as session:
        variant = session.scalar(
            select(Variant).where(
                Variant.id == variant_id, Variant.merchant_id.in_(visible_merchants(session, client))
            )
        )
        if variant is None:
            raise NotFoundError(f"variant {variant_id} not found", code="variant_not_found")
        body = _variant(variant, levels.sellable_by_variant(session, [variant])[variant.id])
    return json_response(body)
