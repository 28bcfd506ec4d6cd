"""Token endpoints of the Walmart emulator (`POST /v3/token`, `GET /v3/token/detail`) and the checks every
other call passes: a known, unexpired access token and the correlation and service-name headers."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.records import epoch_ms
from connector.sandbox.walmart.wire import ACCESS_TOKEN, CORRELATION_ID, SCOPES, SERVICE_NAME, json_response

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


UNAUTHORIZED_INFO = "Unauthorized token or incorrect authorization header"


def _unauthorized(info: str) -> WalmartError:
    """The gateway's 401 for a missing or unknown token, or bad API keys."""
    return WalmartError.gateway(
        401, "UNAUTHORIZED.GMP_GATEWAY_API", "Unauthorized", field="UNAUTHORIZED", info=info
    )


def check_token(emulator: WalmartEmulator) -> str:
    """The request's access token: known and unexpired, or a 401 in the gateway envelope."""
    token = request.headers.get(ACCESS_TOKEN)
    if not token:
        raise _unauthorized(f"{UNAUTHORIZED_INFO}: {ACCESS_TOKEN} is missing")
    with emulator._tokens_lock:
        expires = emulator.tokens.get(token)
    if expires is None:
        raise _unauthorized(f"{UNAUTHORIZED_INFO}.")
    if emulator.clock() >= expires:
        raise WalmartError.gateway(
            401, "INVALID_TOKEN.GMP_GATEWAY_API", "Token is expired or invalid", field="INVALID_TOKEN"
        )
    return token


def check_headers() -> None:
    """The correlation id and service name headers every call needs (400 when missing)."""
    for name in (CORRELATION_ID, SERVICE_NAME):
        if not request.headers.get(name):
            raise WalmartError.resource(
                400, "MISSING_REQUEST_HEADER", f"Missing required header {name}", field=name
            )


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """`/v3/token` and `/v3/token/detail`."""

    @app.post("/v3/token", endpoint="token")
    def token() -> Response:
        if emulator.token_requires_headers:
            check_headers()
        supplied = request.authorization
        if (
            supplied is None
            or supplied.type != "basic"
            or not secrets.compare_digest((supplied.username or "").encode(), emulator.client_id.encode())
            or not secrets.compare_digest((supplied.password or "").encode(), emulator.client_secret.encode())
        ):
            raise _unauthorized(f"{UNAUTHORIZED_INFO}.")
        grant_type = request.form.get("grant_type")
        if not grant_type:
            raise WalmartError.missing_param("grant_type")
        if grant_type != "client_credentials":
            raise WalmartError.bad_param("grant_type", f"Unsupported grant_type {grant_type}")
        issued = emulator.issue_token()
        logger.info("walmart emulator issued token", extra={"client_id": emulator.client_id})
        return json_response(
            {"access_token": issued, "token_type": "Bearer", "expires_in": emulator.token_ttl}
        )

    @app.get("/v3/token/detail", endpoint="token_detail")
    def token_detail() -> Response:
        with emulator._tokens_lock:
            expires = emulator.tokens[request.headers[ACCESS_TOKEN]]
        return json_response({"is_valid": True, "expire_at": str(epoch_ms(expires)), "scopes": SCOPES})
