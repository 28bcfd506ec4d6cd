"""A third store needs no core edit: an adapter that declares a connect flow, a store setting and a periodic
job is connected through `POST /v1/merchants`, configured from its own environment variable and scheduled,
all found through the registry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import Field
from sqlalchemy import func, select

from connector.domain import registry
from connector.domain.errors import AuthError
from connector.domain.ports import (
    AdapterFactory,
    Capability,
    ConnectFields,
    ConnectOption,
    ConnectPlan,
    HttpOptions,
    PeriodicJob,
    StoreJob,
    StoreOrder,
    StoreSetting,
)
from connector.infra import runtime
from connector.infra.models import InboundEvent, Merchant
from connector.scheduler import build_scheduler
from connector.stock import store_orders
from tests.integration.api_support import build_app, make_client

KIND = "acme"


class AcmeConnect(ConnectFields):
    token: str = Field(min_length=1, max_length=100)


class AcmeFlow:
    store_name = "Acme"
    connect_schema = AcmeConnect
    connect_options = (ConnectOption("token", "--token", "acme: API token.", required=True),)
    settings = (StoreSetting("base_url", "ACME_BASE_URL", "Address of the Acme API."),)

    def connect(
        self,
        fields: Mapping[str, Any],
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        settings: Mapping[str, str],
        adapter_for: AdapterFactory,
    ) -> ConnectPlan:
        if fields["token"] != "good":
            raise AuthError("the token is not known")
        store = {"shop": "acme-1", "base_url": settings.get("base_url", "")}
        adapter_for(store, {"token": fields["token"]})
        return ConnectPlan(store, {"token": fields["token"]}, {"takes_orders": False}, summary=["acme shop"])

    def connected_warnings(
        self, config: Mapping[str, Any], attempt_timeout: float, http_timeout: float
    ) -> list[str]:
        return []

    def unsubscribed_warning(self, reason: str | None) -> str:
        return f"Acme notifications were not subscribed ({reason or 'no PUBLIC_URL'})"


@dataclass(frozen=True)
class AcmeOrder:
    order_ref: str
    ordered_at: datetime | None

    def sku_quantities(self) -> dict[str, int]:
        return {"SKU-1": 2}


class AcmeAdapter:
    kind: ClassVar[str] = KIND
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CATALOG_FULL})
    connect_flow: ClassVar[AcmeFlow] = AcmeFlow()
    periodic_jobs: ClassVar[tuple[PeriodicJob, ...]] = (PeriodicJob(StoreJob.STORE_ORDERS, 45),)

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], http: HttpOptions) -> None:
        self.config = dict(config)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config)

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        return str(config["shop"])

    def list_store_orders(self, created_since: datetime) -> Iterator[StoreOrder]:
        return iter([AcmeOrder("A-1", datetime.now(UTC))])


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.adapters(), KIND, AcmeAdapter)
    monkeypatch.setenv("ACME_BASE_URL", "https://acme.example")


def _merchants(rt: runtime.Runtime) -> int:
    with rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Merchant)) or 0)


def test_a_third_store_connects_through_the_generic_endpoint(rt: runtime.Runtime, acme: None) -> None:
    client_id, auth = make_client(rt, "platform")
    http = build_app(rt).test_client()

    for body, code in (
        ({"kind": KIND, "name": "a", "token": "bad"}, "store_credentials_refused"),
        ({"kind": KIND, "name": "a"}, "invalid_request"),  # the adapter's schema wants its token
        ({"kind": KIND, "name": "a", "token": "good", "url": "x"}, "invalid_request"),
        ({"kind": "nope", "name": "a", "token": "good"}, "unknown_kind"),
        ({"name": "a", "token": "good"}, "invalid_request"),
    ):
        answer = http.post("/v1/merchants", json=body, headers=auth)
        assert answer.status_code == 422 and answer.get_json()["code"] == code, (body, answer.get_json())
    refused = http.post("/v1/merchants", json={"kind": KIND, "name": "a", "token": "bad"}, headers=auth)
    assert "Acme refused the keys" in refused.get_json()["detail"]
    assert http.post("/v1/merchants/nope", json={"name": "a"}, headers=auth).status_code == 404
    assert _merchants(rt) == 0

    answer = http.post("/v1/merchants", json={"kind": KIND, "name": "a", "token": "good"}, headers=auth)

    assert answer.status_code == 201, answer.get_data(as_text=True)
    made = answer.get_json()
    assert made["kind"] == KIND and made["store_ref"] == "acme-1" and made["takes_orders"] is False
    assert any("Acme notifications" in warning for warning in made["warnings"])
    with rt.db.session() as session:
        merchant = session.get(Merchant, made["id"])
        assert merchant is not None and merchant.platform_client_id == client_id
        assert merchant.config["base_url"] == "https://acme.example"  # its declared setting, from the env


def test_a_third_stores_periodic_job_is_scheduled_and_reads_its_orders_once(
    rt: runtime.Runtime, acme: None
) -> None:
    _, auth = make_client(rt, "platform")
    http = build_app(rt).test_client()
    made = http.post(f"/v1/merchants/{KIND}", json={"name": "a", "token": "good"}, headers=auth).get_json()

    scheduled = {(job.func, job.args): job.interval for job in build_scheduler(rt).get_jobs()}
    assert scheduled[(store_orders.run_periodic, (KIND, "orders"))] == 45
    assert (store_orders.run_periodic, (KIND, "stock")) not in scheduled
    assert store_orders.run_periodic(KIND, "orders") == [made["id"]]

    assert store_orders.poll_orders(made["id"]) == {"read": 1, "applied": 1, "units": 0}
    assert store_orders.poll_orders(made["id"]) == {"read": 1, "applied": 0, "units": 0}
    with rt.db.session() as session:
        keys = list(session.scalars(select(InboundEvent.dedupe_key).where(InboundEvent.source == "acme:po")))
    assert keys == [f"po:{made['id']}:A-1"]
