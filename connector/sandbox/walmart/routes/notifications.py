"""Notification endpoints of the Walmart emulator: event types, subscriptions (create, list, update, delete;
event URLs only on allowed hosts) and the test delivery."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.records import EVENT_TYPES, Subscription
from connector.sandbox.walmart.wire import json_body, json_response

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def subscription_fields(emulator: WalmartEmulator, entry: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validated subscription fields of a create (all needed) or update (`partial`) body."""
    fields: dict[str, Any] = {}
    if "eventType" in entry or not partial:
        kind = entry.get("eventType")
        if kind not in EVENT_TYPES:
            raise WalmartError.bad_content("eventType", f"Unknown eventType {kind}")
        fields["event_type"] = kind
        fields["resource_name"] = entry.get("resourceName") or EVENT_TYPES[kind]
        fields["event_version"] = entry.get("eventVersion") or "V1"
    if "eventUrl" in entry or not partial:
        url = entry.get("eventUrl")
        parts = urlsplit(url) if isinstance(url, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or parts.hostname not in emulator.allowed_webhook_hosts
        ):
            raise WalmartError.bad_content("eventUrl", "eventUrl must be an http(s) URL on an allowed host")
        fields["event_url"] = url
    if "status" in entry or not partial:
        status = entry.get("status") or "ACTIVE"
        if status not in ("ACTIVE", "INACTIVE"):
            raise WalmartError.bad_content("status", "status must be ACTIVE or INACTIVE")
        fields["status"] = status
    if "authDetails" in entry or not partial:
        auth = entry.get("authDetails") or {}
        if not isinstance(auth, dict):
            raise WalmartError.bad_content("authDetails", "authDetails must be an object")
        if auth and str(auth.get("authMethod", "")).upper() not in ("BASIC_AUTH", "HMAC", "OAUTH"):
            raise WalmartError.bad_content(
                "authDetails.authMethod", "authMethod must be BASIC_AUTH, HMAC or OAUTH"
            )
        fields["auth_details"] = dict(auth)
    if "headers" in entry or not partial:
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict):
            raise WalmartError.bad_content("headers", "headers must be an object")
        fields["headers"] = {str(k): str(v) for k, v in headers.items()}
    return fields


def _subscription(emulator: WalmartEmulator, subscription_id: str) -> Subscription:
    found = emulator.store.subscriptions.get(subscription_id)
    if found is None:
        raise WalmartError.not_found(f"Subscription {subscription_id} not found", field="subscriptionId")
    return found


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """The `/v3/webhooks` routes."""

    @app.get("/v3/webhooks/eventTypes", endpoint="webhook_event_types")
    def event_types() -> Response:
        return json_response(
            {
                "events": [
                    {"eventType": k, "eventVersion": "V1", "resourceName": v} for k, v in EVENT_TYPES.items()
                ]
            }
        )

    @app.post("/v3/webhooks/subscriptions", endpoint="create_subscription")
    def create_subscription() -> Response:
        body = json_body()
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
            raise WalmartError.bad_content("events", "events is required")
        made = [
            Subscription(subscription_id=str(uuid.uuid4()), **subscription_fields(emulator, e, partial=False))
            for e in events
        ]
        with emulator.store.lock:
            for subscription in made:
                emulator.store.subscriptions[subscription.subscription_id] = subscription
            return json_response({"events": [s.to_json(emulator.store.partner_id) for s in made]})

    @app.get("/v3/webhooks/subscriptions", endpoint="list_subscriptions")
    def list_subscriptions() -> Response:
        with emulator.store.lock:
            chosen = [
                s.to_json(emulator.store.partner_id)
                for s in emulator.store.subscriptions.values()
                if all(
                    request.args.get(arg) in (None, value)
                    for arg, value in (
                        ("eventType", s.event_type),
                        ("status", s.status),
                        ("subscriptionId", s.subscription_id),
                        ("resourceName", s.resource_name),
                    )
                )
            ]
        return json_response({"events": chosen})

    @app.patch("/v3/webhooks/subscriptions/<subscription_id>", endpoint="update_subscription")
    def update_subscription(subscription_id: str) -> Response:
        body = json_body()
        if isinstance(body, dict) and isinstance(body.get("events"), list) and body["events"]:
            body = body["events"][0]
        if not isinstance(body, dict):
            raise WalmartError.bad_content("body", "Body must be an object")
        fields = subscription_fields(emulator, body, partial=True)
        with emulator.store.lock:
            found = _subscription(emulator, subscription_id)
            for key, value in fields.items():
                setattr(found, key, value)
            return json_response(found.to_json(emulator.store.partner_id))

    @app.delete("/v3/webhooks/subscriptions/<subscription_id>", endpoint="delete_subscription")
    def delete_subscription(subscription_id: str) -> Response:
        with emulator.store.lock:
            _subscription(emulator, subscription_id)
            del emulator.store.subscriptions[subscription_id]
        return json_response(
            {"subscriptionId": subscription_id, "message": "Subscription deleted successfully"}
        )

    @app.post("/v3/webhooks/test", endpoint="test_webhook")
    def test_webhook() -> Response:
        body = json_body()
        if not isinstance(body, dict):
            raise WalmartError.bad_content("body", "Body must be an object")
        probe = Subscription(subscription_id="test", **subscription_fields(emulator, body, partial=False))
        status = emulator.webhooks.send_test(probe)
        if status is None or not 200 <= status < 300:
            raise WalmartError.bad_content("eventUrl", f"Eventurl validation failed (status {status})")
        return json_response({"message": "Eventurl successfully validated"})
