"""Pushing orders to a shop: `orderCreate` under an idempotency key, finding an order pushed before, and
`orderCancel`."""

from __future__ import annotations

import logging
from typing import Any

from adapters.shopify import const, mapper, order_mapper, queries
from adapters.shopify.base import ShopifyBase
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.orders import ExternalOrderRef, Order

logger = logging.getLogger(__name__)


class ShopifyOrders(ShopifyBase):
    """Order pushing of `ShopifyAdapter` (mixed into it)."""

    def create_order(self, order: Order, idempotency_key: str) -> ExternalOrderRef:
        """Push an order with `orderCreate`, our key in `sourceIdentifier` and a tag; an order already
        created with this key is returned instead. A failure that may have created it is raised as it came,
        without a repeat: look it up with `find_order` before retrying."""
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValidationError(
                "idempotency key must be 1 to 255 characters", details={"field": "idempotency_key"}
            )
        existing = self.find_order(idempotency_key)
        if existing is not None:
            return existing
        if order.currency != self.currency():
            raise ValidationError(
                f"order {order.id} is in {order.currency} but {self._shop} sells in {self.currency()}",
                details={"field": "currency"},
            )
        try:
            variables = order_mapper.order_variables(
                order,
                idempotency_key,
                inventory_behaviour=self.config["inventory_behaviour"],
                extra_tags=self.config["order_tags"],
                source_name=self.config["source_name"],
                test=self.config["test_orders"],
            )
        except ValueError as exc:
            raise ValidationError(f"order {order.id}: {exc}") from None
        payload = self.client.mutate(queries.ORDER_CREATE, variables, "orderCreate", repeatable=False)
        try:
            ref = order_mapper.order_ref(payload.get("order"))
        except ValueError:
            raise PermanentError("orderCreate returned no order", code="graphql_no_data") from None
        logger.info(
            "order pushed", extra={"shop": self._shop, "order": order.id, "store_order": ref.external_id}
        )
        return ref

    def find_order(self, idempotency_key: str) -> ExternalOrderRef | None:
        """The order pushed with this key: by `source_identifier`, else by the key's tag."""
        searches = (
            (f"source_identifier:{order_mapper.search_literal(idempotency_key)}", None),
            (
                f"tag:{order_mapper.search_literal(order_mapper.key_tag(idempotency_key))}",
                order_mapper.key_tag(idempotency_key),
            ),
        )
        for search, tag in searches:
            connection = self.client.execute(queries.ORDER_FIND, {"query": search}).get("orders")
            for node in mapper.nodes(connection):
                if not isinstance(node, dict):
                    continue
                tags = node.get("tags") or []
                if node.get("sourceIdentifier") == idempotency_key or (tag is not None and tag in tags):
                    return order_mapper.order_ref(node)
        return None

    def cancel_order(
        self,
        ref: ExternalOrderRef,
        *,
        reason: str = "OTHER",
        restock: bool = True,
        refund: bool = True,
        notify_customer: bool = False,
        staff_note: str | None = None,
    ) -> None:
        """Cancel with `orderCancel` (an asynchronous job in the store): restock, refund to the original
        payment methods, reason one of const.CANCEL_REASONS."""
        if mapper.gid_type(ref.external_id) != "Order":
            raise ValidationError(
                f"{ref.external_id!r} is not an Order GID", details={"field": "external_id"}
            )
        if reason not in const.CANCEL_REASONS:
            raise ValidationError(
                f"cancel reason {reason!r} is not one of {', '.join(sorted(const.CANCEL_REASONS))}"
            )
        variables: dict[str, Any] = {
            "orderId": ref.external_id,
            "reason": reason,
            "restock": restock,
            "refundMethod": {"originalPaymentMethodsRefund": True} if refund else None,
            "notifyCustomer": notify_customer,
            "staffNote": staff_note,
        }
        payload = self.client.mutate(
            queries.ORDER_CANCEL, variables, "orderCancel", errors_key="orderCancelUserErrors"
        )
        job = payload.get("job")
        logger.info(
            "order cancellation requested",
            extra={
                "shop": self._shop,
                "order": ref.external_id,
                "job": job.get("id") if isinstance(job, dict) else None,
            },
        )
