"""HTTP routes of `/v1/showcases`: merchants' and creators' showcases, their hand-placed items, and the live
read a viewer's app makes.

`GET /v1/showcases/{id}` answers a page of the visible items with live price, sale price and sellable stock,
an `ETag` over the page (`If-None-Match` answers 304) and `Cache-Control: private, max-age=2`. A page is
computed from the database, or served from a Redis copy at most `cache.CACHE_MS` (0.5 s) old and dropped at
once by any write to the showcase or refresh after a change of its merchants' catalog or stock; with the
client's own `max-age`, stock shown is never older than `CACHE_SECONDS` plus that. A showcase of another
client is a 404.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Final, Literal

import orjson
from flask import Blueprint, Response, request, url_for
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.api.common import (
    Body,
    PageQuery,
    api_runtime,
    authenticate,
    decode_cursor,
    decode_id_cursor,
    encode_cursor,
    invalid,
    parse_body,
    parse_query,
    plain_text,
    require_client,
)
from connector.api.openapi import MAX_ID, doc
from connector.api.orders import refused
from connector.domain.errors import RefusedError
from connector.showcases import cache, showcases

logger = logging.getLogger(__name__)

bp = Blueprint("api_showcases", __name__)
bp.before_request(require_client)
bp.register_error_handler(RefusedError, refused)

TAG = "showcases"
CACHE_SECONDS: Final = 2
"""The longest a reader may keep a showcase page: the bound on how old its stock may be."""
_RULE = (
    "A rule (null: none): `vendor`, `min_price_minor`, `max_price_minor`, `in_stock_only`, `tag` (a store tag, "
    "any case), `collection` (a store collection's handle or id), `sort` (newest, best_selling, price_asc, "
    "price_desc), and for a creator `merchant_ids` (required). Tags and collections follow the catalog as it "
    "syncs. Anything else is a 422 `invalid_rule`."
)
_PRODUCTS = f"At most {showcases.MAX_ITEMS} hand-placed products (else 422 `too_many_items`)."


class ShowcaseCreate(Body):
    """A merchant's showcase (`merchant_id`) or a creator's (`creator_ref`), by hand, by rule, or both."""

    owner_kind: Literal["merchant", "creator"]
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    creator_ref: str | None = Field(default=None, min_length=1, max_length=255)
    title: str = Field(min_length=1, max_length=200)
    handle: str = Field(min_length=1, max_length=100, description="Unique per owner: a-z, 0-9 and '-'.")
    out_of_stock: Literal["hide", "sold_out"] = Field(
        default="hide", description="What an item out of stock does."
    )
    rule: dict[str, Any] | None = Field(default=None, description=_RULE)
    max_items: int = Field(
        default=showcases.DEFAULT_RULE_ITEMS,
        ge=-MAX_ID,
        le=MAX_ID,
        description="Most products a rule adds: 1 to 500.",
    )
    product_ids: list[int] = Field(default_factory=list, max_length=10_000, description=_PRODUCTS)
    pinned: bool = Field(default=True, description="Hand-placed products go above the rule's (else below).")

    _clean = field_validator("title", "creator_ref", "handle")(plain_text)


class ShowcaseUpdate(Body):
    """Fields to change; `rule: null` removes the rule; `product_ids` replaces the hand-placed list."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    handle: str | None = Field(default=None, min_length=1, max_length=100)
    out_of_stock: Literal["hide", "sold_out"] | None = None
    rule: dict[str, Any] | None = Field(default=None, description=_RULE)
    max_items: int | None = Field(default=None, ge=-MAX_ID, le=MAX_ID)
    product_ids: list[int] | None = Field(default=None, max_length=10_000, description=_PRODUCTS)
    pinned: bool | None = None

    _clean = field_validator("title", "handle")(plain_text)


class ItemsAdd(Body):
    product_ids: list[int] = Field(min_length=1, max_length=10_000, description=_PRODUCTS)
    position: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="Where to insert (default: the end)."
    )
    pinned: bool = True


class ItemMove(Body):
    position: int = Field(ge=0, le=MAX_ID, description="The new place in the hand-placed list (0: first).")


class PlacedOut(BaseModel):
    product_id: int
    position: int
    pinned: bool


class ShowcaseOut(BaseModel):
    id: int
    owner_kind: str
    merchant_id: int | None
    creator_ref: str | None
    title: str
    handle: str
    out_of_stock: str
    rule: dict[str, Any] | None
    max_items: int
    placed: list[PlacedOut] = Field(description="The hand-placed products, in order.")
    created_at: str
    updated_at: str


class ShowcasePage(BaseModel):
    data: list[ShowcaseOut]
    next_cursor: str | None


class PriceOut(BaseModel):
    amount_minor: int = Field(description="Integer minor units of the currency.")
    currency: str


class LinkOut(BaseModel):
    code: str
    url: str


class ItemOut(BaseModel):
    position: int
    product_id: int
    merchant_id: int
    title: str
    url: str | None
    media: list[Any]
    price: PriceOut = Field(description="The regular price (the compare-at price while on sale).")
    sale_price: PriceOut | None = Field(description="The selling price while it is below the regular price.")
    sellable: int | None = Field(
        description="Units sellable now: store level - holds - buffer, summed; null when not tracked."
    )
    available: bool
    sold_out: bool
    pinned: bool
    placed: bool = Field(description="Placed by hand (else chosen by the rule).")
    link: LinkOut | None = Field(description="A creator's showcase: the creator's affiliate link.")


class ShowcaseView(ShowcaseOut):
    items: list[ItemOut]
    total: int = Field(description="Visible items in the whole showcase.")
    next_cursor: str | None


class ShowcasesQuery(PageQuery):
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    creator_ref: str | None = Field(default=None, min_length=1, max_length=255)


class ViewQuery(PageQuery):
    """A page of the visible items."""


class ConditionalHeaders(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        max_length=200,
        description="An ETag of this page: 304 if unchanged.",
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


_WRITE_CODES = (
    "invalid_request",
    "invalid_showcase",
    "invalid_rule",
    "merchant_not_found",
    "product_not_found",
    "product_not_owned",
    "not_in_program",
    "too_many_items",
)


@bp.post("/showcases")
@doc(
    summary="Create a showcase",
    tags=[TAG],
    body=ShowcaseCreate,
    responses={201: ShowcaseOut, 400: None, 409: None, 415: None, 422: None},
    codes={409: ("handle_taken",), 422: _WRITE_CODES},
    operation_id="createShowcase",
)
def create_showcase() -> Response:
    """A merchant's or a creator's showcase; announced at once (`showcase.updated`) when it shows items."""
    client = authenticate()
    body = parse_body(ShowcaseCreate)
    spec = showcases.ShowcaseSpec(
        owner_kind=body.owner_kind,
        title=body.title,
        handle=body.handle,
        merchant_id=body.merchant_id,
        creator_ref=body.creator_ref,
        out_of_stock=body.out_of_stock,
        rule=body.rule,
        max_items=body.max_items,
        product_ids=body.product_ids,
        pinned=body.pinned,
    )
    result = showcases.create_showcase(api_runtime(), client.id, spec)
    response = _json(result, 201)
    response.headers["Location"] = url_for(".get_showcase", showcase_id=result["id"])
    return response


@bp.get("/showcases")
@doc(
    summary="List showcases",
    tags=[TAG],
    query=ShowcasesQuery,
    responses={200: ShowcasePage, 422: None},
    operation_id="listShowcases",
)
def list_showcases() -> Response:
    """The client's showcases by id, optionally one merchant's or one creator's."""
    client = authenticate()
    params = parse_query(ShowcasesQuery)
    after = decode_id_cursor("showcases", params.cursor)
    rows, more = showcases.list_showcases(
        api_runtime(),
        client.id,
        merchant_id=params.merchant_id,
        creator_ref=params.creator_ref,
        after=after,
        limit=params.limit,
    )
    next_cursor = encode_cursor("showcases", [rows[-1]["id"]]) if more and rows else None
    return _json({"data": rows, "next_cursor": next_cursor})


def _offset(showcase_id: int, cursor: str | None) -> int:
    if cursor is None:
        return 0
    found, offset = decode_cursor("showcase-items", cursor, arity=2)
    if found != showcase_id or not isinstance(offset, int):
        raise invalid("cursor is not valid", [("cursor", "not a cursor of this showcase")])
    return offset


def _page(showcase_id: int, client_id: int, offset: int, limit: int) -> bytes:
    """A page of the showcase computed now, as the JSON answered."""
    rt = api_runtime()
    page = showcases.read_showcase(
        rt,
        client_id,
        showcase_id,
        offset=offset,
        limit=limit,
        base_url=rt.settings.public_url or request.host_url,
    )
    next_cursor = (
        encode_cursor("showcase-items", [showcase_id, page.next_offset])
        if page.next_offset is not None
        else None
    )
    return orjson.dumps(
        {**page.showcase, "items": page.items, "total": page.total, "next_cursor": next_cursor}
    )


@bp.get("/showcases/<id:showcase_id>")
@doc(
    summary="Read a showcase with live price and stock",
    tags=[TAG],
    query=ViewQuery,
    headers=ConditionalHeaders,
    responses={200: ShowcaseView, 304: None, 404: None, 422: None},
    codes={404: ("showcase_not_found",)},
    operation_id="getShowcase",
)
def get_showcase(showcase_id: int) -> Response:
    """The visible items in order, a page at a time, with live price, sale price and sellable stock (the
    checkout definition) and, for a creator, the creator's link per product. `ETag` and `If-None-Match`
    (304); `Cache-Control: private, max-age=2` bounds how old a cached page's stock may be."""
    client = authenticate()
    params = parse_query(ViewQuery)
    offset = _offset(showcase_id, params.cursor)
    rt = api_runtime()
    generation, owner, payload = cache.lookup(rt.redis, showcase_id, offset, params.limit)
    if payload is None or owner != client.id:
        payload = _page(showcase_id, client.id, offset, params.limit)
        cache.store(rt.redis, showcase_id, offset, params.limit, generation, client.id, payload)
    etag = '"' + hashlib.blake2b(payload, digest_size=12).hexdigest() + '"'
    wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
    if etag in wanted or "*" in wanted:
        response = Response(status=304)
    else:
        response = Response(payload, status=200, mimetype="application/json")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = f"private, max-age={CACHE_SECONDS}"
    return response


@bp.patch("/showcases/<id:showcase_id>")
@doc(
    summary="Change a showcase",
    tags=[TAG],
    body=ShowcaseUpdate,
    responses={200: ShowcaseOut, 400: None, 404: None, 409: None, 415: None, 422: None},
    codes={404: ("showcase_not_found",), 409: ("handle_taken",), 422: _WRITE_CODES},
    operation_id="updateShowcase",
)
def update_showcase(showcase_id: int) -> Response:
    """Change title, handle, out-of-stock handling, rule or the hand-placed list."""
    client = authenticate()
    body = parse_body(ShowcaseUpdate)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return _json(showcases.update_showcase(api_runtime(), client.id, showcase_id, changes))


@bp.delete("/showcases/<id:showcase_id>")
@doc(
    summary="Delete a showcase",
    tags=[TAG],
    responses={204: None, 404: None},
    codes={404: ("showcase_not_found",)},
    operation_id="deleteShowcase",
)
def delete_showcase(showcase_id: int) -> Response:
    """Delete the showcase and its hand-placed list; a `showcase.deleted` event (with the products it last
    showed, as `removed`) goes to the subscribed endpoints."""
    client = authenticate()
    showcases.delete_showcase(api_runtime(), client.id, showcase_id)
    return Response(status=204)


@bp.post("/showcases/<id:showcase_id>/items")
@doc(
    summary="Place products in a showcase",
    tags=[TAG],
    body=ItemsAdd,
    responses={200: ShowcaseOut, 400: None, 404: None, 415: None, 422: None},
    codes={404: ("showcase_not_found",), 422: _WRITE_CODES},
    operation_id="addShowcaseItems",
)
def add_items(showcase_id: int) -> Response:
    """Insert products into the hand-placed list at `position` (default: the end)."""
    client = authenticate()
    body = parse_body(ItemsAdd)
    result = showcases.add_items(
        api_runtime(), client.id, showcase_id, body.product_ids, position=body.position, pinned=body.pinned
    )
    return _json(result)


@bp.patch("/showcases/<id:showcase_id>/items/<id:product_id>")
@doc(
    summary="Move a product in a showcase",
    tags=[TAG],
    body=ItemMove,
    responses={200: ShowcaseOut, 400: None, 404: None, 415: None, 422: None},
    codes={404: ("showcase_not_found", "item_not_found")},
    operation_id="moveShowcaseItem",
)
def move_item(showcase_id: int, product_id: int) -> Response:
    """Move a hand-placed product to `position`."""
    client = authenticate()
    body = parse_body(ItemMove)
    return _json(showcases.move_item(api_runtime(), client.id, showcase_id, product_id, body.position))


@bp.delete("/showcases/<id:showcase_id>/items/<id:product_id>")
@doc(
    summary="Remove a product from a showcase",
    tags=[TAG],
    responses={200: ShowcaseOut, 404: None},
    codes={404: ("showcase_not_found", "item_not_found")},
    operation_id="removeShowcaseItem",
)
def remove_item(showcase_id: int, product_id: int) -> Response:
    """Take a hand-placed product out of the showcase."""
    client = authenticate()
    return _json(showcases.remove_item(api_runtime(), client.id, showcase_id, product_id))
