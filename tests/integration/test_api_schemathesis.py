"""Every operation of `/v1/openapi.json`, fuzzed by schemathesis through the WSGI app: no input is a 5xx.

Cases are generated from the document the app serves (positive and negative data), sent with a valid key
against seeded data (an order, a live session on sale with a pin), and checked with `not_a_server_error`.
Nothing leaves loopback: webhook URLs are never resolved or reached (the address check is given a fixed public
answer), store keys are checked against the Walmart sandbox, and no worker runs.

The operations are dealt, in label order, into PARTS tests of their own (each over freshly seeded data), so that
test processes fuzz them side by side; together the parts cover every operation. They run on PostgreSQL (SQLite
where TEST_DATABASE_URL is not set), the stricter backend: it refuses what SQLite would store (a NUL character in
text, a number out of its column's range), so input the API lets through to the database fails there first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from config.settings import Settings
from connector.infra import addresses
from connector.sandbox.walmart import serve as serve_walmart
from tests.helpers import ON_POSTGRESQL
from tests.integration.api_support import Runtime, build_app, make_client, seed_catalog

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
PARTS = 4
LISTINGS = ("GET /v1/merchants", "GET /v1/products", "GET /v1/webhook-endpoints", "GET /v1/orders")


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Store calls stay on loopback: the Walmart keys check (`POST /v1/merchants/walmart`) goes to the
    sandbox emulator, never to Walmart."""
    with serve_walmart(client_id="wm-sandbox-client", client_secret="wm-sandbox-secret") as walmart:
        monkeypatch.setenv("WALMART_BASE_URL", walmart.url)  # the setting the Walmart adapter declares
        yield settings.model_copy(update={"public_url": ""})


@pytest.mark.slow
@ON_POSTGRESQL
@pytest.mark.parametrize("part", range(PARTS))
def test_no_operation_answers_with_a_server_error(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, part: int
) -> None:
    monkeypatch.setattr(addresses, "resolve", lambda host, port: [ipaddress.ip_address("93.184.215.14")])
    app = build_app(rt)
    client_id, auth = make_client(rt, "platform-a")
    seeded = seed_catalog(rt, client_id, products=3)
    other_id, _ = make_client(rt, "platform-b")
    seed_catalog(rt, other_id, products=1, name="other")
    created = app.test_client().post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"}, headers=auth
    )
    assert created.status_code == 201
    _seed_sales(app.test_client(), auth, seeded.merchant_id, seeded.variant_ids[0])

    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) == len(list(schema.get_all_operations()))  # the document loads whole
    labels = {operation.label for operation in operations}
    assert {
        "GET /v1/products",
        "GET /v1/products/{product_id}",
        "POST /v1/webhook-endpoints",
        "POST /v1/orders",
        "POST /v1/orders/{order_id}/cancel",
        "POST /v1/live-sessions",
        "POST /v1/live-sessions/{session_id}/pins",
        "POST /v1/live-sessions/{session_id}/start",
    } <= labels
    assert labels >= set(LISTINGS)

    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    mine = sorted(operations, key=lambda operation: operation.label)[part::PARTS]
    assert mine  # every part fuzzes something
    for operation in mine:
        for mode, examples in EXAMPLES.items():

            @hypothesis.settings(
                max_examples=examples,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=auth, checks=[not_a_server_error])
                statuses.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label} ({mode}): {exc}")
    assert not failures, "\n\n".join(failures)
    # the key was accepted (negative cases may also garble it): the listings of this part answered
    for label in LISTINGS:
        if any(operation.label == label for operation in mine):
            assert 200 in statuses[label], (label, statuses[label])


def _seed_sales(http: Any, auth: dict[str, str], merchant_id: int, variant_id: int) -> None:
    """An order and a live session on sale with the variant pinned, so that generated ids (small integers,
    the Idempotency-Key header from the document) reach real orders, sessions and pins."""
    order = http.post(
        "/v1/orders",
        json={
            "lines": [{"variant_id": variant_id, "quantity": 1, "unit_price_minor": 2500}],
            "currency": "USD",
        },
        headers={**auth, "Idempotency-Key": "seed-1"},
    )
    assert order.status_code == 201, order.get_json()
    live = http.post("/v1/live-sessions", json={"merchant_id": merchant_id, "title": "Drop"}, headers=auth)
    assert live.status_code == 201, live.get_json()
    session_id = live.get_json()["id"]
    pin = http.post(
        f"/v1/live-sessions/{session_id}/pins",
        json={"variant_id": variant_id, "flash_price_minor": 1999, "allocation": 3, "per_buyer_limit": 1},
        headers=auth,
    )
    assert pin.status_code == 201, pin.get_json()
    assert http.post(f"/v1/live-sessions/{session_id}/start", headers=auth).status_code == 200
