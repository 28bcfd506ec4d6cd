"""Pushing orders through Walmart Multichannel Solutions: the sales channel, `sellerOrderId` under an
idempotency key, the order's status polled to an outcome, and cancellation.

An order's attribution (the creator who sold it, `Order.attribution`) is not sent: the Multichannel order
has no field for a seller's own annotations (no tags, notes or custom attributes), so on Walmart it is
kept in Storelink's commission ledger only."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from adapters.walmart import const, mapper, order_mapper
from adapters.walmart.base import POLL_INITIAL, POLL_MAX, WalmartBase
from adapters.walmart.order_mapper import McsStatus
from connector.domain.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RetryableError,
    StorelinkError,
    ValidationError,
)
from connector.domain.orders import ExternalOrderRef, Order

logger = logging.getLogger(__name__)
PENDING_RETRY_SECONDS: Final = 30.0
"""How soon the job layer looks again at a Multichannel order Walmart has not decided on."""


def _codes(error: StorelinkError) -> list[str]:
    codes = error.details.get("codes")
    return [str(code) for code in codes] if isinstance(codes, list) else []


class WalmartMultichannel(WalmartBase):
    """Order pushing of `WalmartAdapter` (mixed into it; only for sellers with `mcs_enrolled`)."""

    def discover_channel(self) -> str:
        """The seller's Multichannel sales channel id (`channel-details`): the one named
        `order_channel_name`, else the only active one. It is kept on the instance and in `config`."""
        body = self.client.request("GET", const.MCS_CHANNELS_PATH)
        found = [entry for entry in order_mapper.channels(body) if entry[2]]
        wanted = self.config["order_channel_name"]
        if wanted:
            found = [entry for entry in found if entry[1] == wanted]
        if len(found) != 1:
            names = ", ".join(f"{name or '?'} ({cid})" for cid, name, _ in found) or "none"
            raise PermanentError(
                f"cannot tell the Multichannel sales channel: active channels {names}; "
                "set order_channel_id or order_channel_name",
                code="no_order_channel",
            )
        self.channel_id = found[0][0]
        self.config["order_channel_id"] = self.channel_id
        logger.info("walmart sales channel found", extra={"order_channel_id": self.channel_id})
        return self.channel_id

    def _require_mcs(self) -> None:
        if not self.config["mcs_enrolled"]:
            raise PermanentError(
                "this Walmart seller is not on Multichannel Solutions: orders cannot be pushed "
                "(units sold elsewhere are taken off its stock instead)",
                code="unsupported",
            )

    def seller_order_id(self, idempotency_key: str) -> str:
        """The deterministic `sellerOrderId` of an idempotency key."""
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValidationError(
                "idempotency key must be 1 to 255 characters", details={"field": "idempotency_key"}
            )
        return order_mapper.seller_order_id(idempotency_key, self.config["seller_order_prefix"])

    def order_status(self, seller_order: str) -> McsStatus | None:
        """A Multichannel order's status by `sellerOrderId`; None when Walmart has no such order."""
        try:
            body = self.client.request("GET", const.MCS_STATUS_PATH, params={"orderNumber": seller_order})
        except NotFoundError:
            return None
        except (ValidationError, PermanentError) as exc:
            if any("NOT_FOUND" in str(code).upper() for code in _codes(exc)):
                return None
            raise
        return order_mapper.mcs_status(body, seller_order)

    def _outcome(self, status: McsStatus) -> ExternalOrderRef:
        """The ref of an order Walmart took; PermanentError when it refused it, RetryableError while undecided."""
        if status.rejected or status.cancelled:
            raise PermanentError(
                f"Walmart {'cancelled' if status.cancelled else 'rejected'} Multichannel order "
                f"{status.seller_order_id} ({status.status})",
                code="mcs_rejected",
                details={"seller_order_id": status.seller_order_id, "status": status.status},
            )
        if status.pending:
            raise RetryableError(
                f"Walmart has not decided on Multichannel order {status.seller_order_id} yet ({status.status or 'no status'})",
                retry_after=PENDING_RETRY_SECONDS,
                code="mcs_pending",
                details={"seller_order_id": status.seller_order_id, "status": status.status},
            )
        name = status.purchase_order_ids[0] if status.purchase_order_ids else None
        return ExternalOrderRef(external_id=status.seller_order_id, name=name)

    def create_order(self, order: Order, idempotency_key: str) -> ExternalOrderRef:
        """Submit a Multichannel fulfilment order with a `sellerOrderId` derived from the key, then poll its
        status for up to `mcs_poll_seconds`: the ref when Walmart took it, PermanentError when it refused
        it, RetryableError while undecided (look with `find_order` before trying again)."""
        self._require_mcs()
        seller_order = self.seller_order_id(idempotency_key)
        existing = self.order_status(seller_order)
        if existing is not None:
            return self._outcome(existing)
        channel = self.channel_id or self.discover_channel()
        try:
            payload = order_mapper.mcs_order_payload(
                order,
                seller_order,
                channel,
                datetime.fromtimestamp(self._wall(), UTC),
                self.config["shipping_method"],
            )
        except ValueError as exc:
            raise ValidationError(f"order {order.id}: {exc}") from None
        try:
            answer = self.client.request("POST", const.MCS_ORDERS_PATH, body=payload, repeatable=False)
        except PermanentError as exc:
            if isinstance(exc, AuthError):
                raise
            # A repeat of an order that landed earlier is refused as a duplicate: the earlier one stands.
            landed = self.order_status(seller_order)
            if landed is None:
                raise
            return self._outcome(landed)
        request_id = None
        if isinstance(answer, Mapping) and isinstance(answer.get("payload"), Mapping):
            request_id = mapper.text(answer["payload"].get("requestId"))
        logger.info(
            "walmart multichannel order submitted",
            extra={"order": order.id, "seller_order_id": seller_order, "request_id": request_id},
        )
        return self._poll(seller_order)

    def _poll(self, seller_order: str) -> ExternalOrderRef:
        deadline = self._monotonic() + self.config["mcs_poll_seconds"]
        delay = POLL_INITIAL
        status: McsStatus | None = None
        while True:
            status = self.order_status(seller_order)
            if status is not None and not status.pending:
                return self._outcome(status)
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_MAX)
        raise RetryableError(
            f"Walmart has not decided on Multichannel order {seller_order} yet",
            retry_after=PENDING_RETRY_SECONDS,
            code="mcs_pending",
            details={"seller_order_id": seller_order, "status": status.status if status else None},
        )

    def find_order(self, idempotency_key: str) -> ExternalOrderRef | None:
        """The Multichannel order pushed with this key: None when Walmart has none, the ref when it took it,
        PermanentError when it refused it, RetryableError while it is undecided."""
        self._require_mcs()
        status = self.order_status(self.seller_order_id(idempotency_key))
        return None if status is None else self._outcome(status)

    def cancel_order(self, ref: ExternalOrderRef) -> None:
        """Cancel every line of a Multichannel order (only lines not shipped yet can be)."""
        self._require_mcs()
        status = self.order_status(ref.external_id)
        if status is None:
            raise NotFoundError(f"Walmart has no Multichannel order {ref.external_id}", code="not_found")
        if status.cancelled:
            return
        if not status.lines:
            raise PermanentError(
                f"Walmart's status of {ref.external_id} names no lines to cancel", code="no_lines"
            )
        self.client.request(
            "POST",
            const.MCS_CANCEL_PATH,
            body=order_mapper.mcs_cancel_payload(ref.external_id, status.lines),
        )
        logger.info(
            "walmart multichannel order cancellation sent", extra={"seller_order_id": ref.external_id}
        )
