"""Checkout: platform orders accepted once per idempotency key, with stock held, then pushed to the store.

`create_order` validates the lines (the variant exists, belongs to a merchant of the calling platform client
whose store takes orders, as its adapter's declared capabilities say, is sellable, is sold at the stated
price), holds the stock (`connector.stock.counters` and the rows of `connector.stock.holds`), persists the order
`accepted` with its lines, holds and `order.accepted` event in one transaction (`connector.orders.accept`), and
queues the push (`connector.orders.push`), which confirms or rejects the order and settles the holds.

Two paths share the persistence:

- a regular order (here) takes the variants' share lock, reserves their counters, and writes;
- a live order (`live_session_id`) buys from the session's pins (`connector.orders.live_checkout`).

Reading orders is `connector.orders.queries`; cancelling them `connector.orders.cancel`.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from connector.domain.errors import RefusedError, RetryableError
from connector.infra import runtime
from connector.orders import live_checkout
from connector.orders.accept import (
    MAX_ATTEMPTS,
    REPLAY_WAIT_SECONDS,
    AcceptedLine,
    AgainError,
    Answer,
    OrderRequest,
    persist,
    rebuild_after,
    replay,
    takes_no_orders,
)
from connector.stock import counters, holds
from connector.stock.counters import Hold, VariantLine

logger = logging.getLogger(__name__)


def _check_lines(rows: dict[int, holds.StockRow], request: OrderRequest, client_id: int) -> int:
    """Refuse lines this client may not buy; returns the order's merchant."""
    merchants: set[int] = set()
    mismatched: list[dict[str, Any]] = []
    for index, line in enumerate(request.lines):
        row = rows.get(line.variant_id)
        if row is None or row.platform_client_id != client_id:
            raise RefusedError(
                422,
                "variant_not_found",
                f"lines[{index}]: variant {line.variant_id} does not exist",
                errors=[{"field": f"lines.{index}.variant_id", "message": "no such variant"}],
            )
        if row.merchant_status != "installed" or row.status != "active":
            raise RefusedError(
                409,
                "variant_not_sellable",
                f"lines[{index}]: variant {line.variant_id} is not for sale",
                variant_id=line.variant_id,
            )
        if not row.takes_orders:
            raise takes_no_orders(row.merchant_id)
        if row.currency != request.currency:
            raise RefusedError(
                422,
                "currency_mismatch",
                f"lines[{index}]: variant {line.variant_id} is sold in {row.currency}, not {request.currency}",
                errors=[{"field": "currency", "message": f"must be {row.currency}"}],
            )
        if row.price_minor != line.unit_price_minor:
            mismatched.append(
                {
                    "line": index,
                    "variant_id": line.variant_id,
                    "unit_price_minor": line.unit_price_minor,
                    "current_price_minor": row.price_minor,
                    "currency": row.currency,
                }
            )
        merchants.add(row.merchant_id)
    if mismatched:
        raise RefusedError(
            409, "price_changed", "the price of a line is not the current price", lines=mismatched
        )
    if len(merchants) != 1:
        raise RefusedError(
            422,
            "mixed_merchants",
            "every line of an order must be sold by the same merchant",
            errors=[{"field": "lines", "message": "variants of several merchants"}],
        )
    return merchants.pop()


def _create_regular(
    rt: runtime.Runtime, client_id: int, key: str, digest: str, request: OrderRequest
) -> Answer:
    for _attempt in range(MAX_ATTEMPTS):
        expires_at = datetime.now(UTC) + holds.DEFAULT_HOLD
        taken: list[Hold] = []
        try:
            with rt.db.session() as session:
                rows = holds.lock_variants(session, [line.variant_id for line in request.lines])
                merchant_id = _check_lines(rows, request, client_id)
                lines = [
                    AcceptedLine(
                        line, counters.new_reservation_id() if rows[line.variant_id].tracked else None
                    )
                    for line in request.lines
                ]
                counted = [
                    VariantLine(
                        line.request.variant_id,
                        line.request.quantity,
                        line.reservation_id,
                        rows[line.request.variant_id].level_version,
                    )
                    for line in lines
                    if line.reservation_id is not None
                ]
                if counted:
                    outcome = counters.reserve_variants(rt.redis, counted, expires_at)
                    if outcome.status in ("missing", "stale"):
                        raise AgainError(
                            variants=[counted[outcome.line].variant_id], force=outcome.status == "stale"
                        )
                    if outcome.status == "short":
                        short = counted[outcome.line]
                        raise RefusedError(
                            409,
                            "insufficient_stock",
                            f"only {max(0, outcome.value)} of variant {short.variant_id} can be sold",
                            variant_id=short.variant_id,
                            available=max(0, outcome.value),
                        )
                    taken = counters.counter_holds(counted)
                body = persist(
                    session,
                    client_id=client_id,
                    key=key,
                    digest=digest,
                    request=request,
                    merchant_id=merchant_id,
                    lines=lines,
                    variant_merchants={vid: row.merchant_id for vid, row in rows.items()},
                    expires_at=expires_at,
                )
        except AgainError as again:
            rebuild_after(rt, again)
            continue
        except IntegrityError:
            counters.release_in_redis(rt.redis, taken)
            found = replay(rt, client_id, key, digest, wait=REPLAY_WAIT_SECONDS)
            if found is None:
                raise
            return found
        except BaseException:
            counters.release_in_redis(rt.redis, taken)
            raise
        logger.info(
            "order accepted",
            extra={"order_id": body["id"], "merchant_id": merchant_id, "lines": len(request.lines)},
        )
        return Answer(201, body)
    raise RetryableError("stock counters are being rebuilt; try again", code="stock_busy", retry_after=1)


def create_order(
    rt: runtime.Runtime,
    client_id: int,
    idempotency_key: str,
    request: OrderRequest,
    digest: str,
    key_check: counters.KeyCheck | None = None,
) -> Answer:
    """Accept an order once per (client, key): validate, hold stock, persist `accepted`, queue the push. A
    `key_check` is confirmed by a live purchase's Lua call (`live_checkout.create_live`); a regular order
    needs its key confirmed before."""
    if request.live_session_id is not None:
        return live_checkout.create_live(rt, client_id, idempotency_key, digest, request, key_check)
    assert key_check is None or key_check.confirmed, "a regular order's API key is confirmed first"
    found = replay(rt, client_id, idempotency_key, digest)
    if found is not None:
        return found
    mark = counters.idempotency_mark(client_id, idempotency_key)
    token = secrets.token_hex(8)
    if not counters.claim_mark(rt.redis, mark, token):
        # Another request with this key is being answered: answer what it answers.
        found = replay(rt, client_id, idempotency_key, digest, wait=REPLAY_WAIT_SECONDS)
        if found is not None:
            return found
        token = ""  # a mark left by a request that made nothing: go on without it
    try:
        return _create_regular(rt, client_id, idempotency_key, digest, request)
    except BaseException:
        if token:
            counters.drop_mark(rt.redis, mark, token)
        raise
