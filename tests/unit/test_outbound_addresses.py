"""Endpoint URL validation refuses private, loopback, link-local (metadata), multicast and reserved targets."""

from __future__ import annotations

import pytest

from connector.domain.errors import ValidationError
from webhooks.outbound.endpoints import matches, validate_event_types, validate_url


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.5/hook",
        "https://192.168.1.10:8443/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://240.0.0.1/hook",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
    ],
)
def test_private_destinations_refused(url: str) -> None:
    with pytest.raises(ValidationError, match=r"is not allowed \(WEBHOOK_ALLOW_PRIVATE_URLS=true allows"):
        validate_url(url)
    assert validate_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["https://93.184.215.14/hook", "https://[2606:4700:4700::1111]/webhooks"])
def test_public_addresses_accepted(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.215.14/hook", "must use https"),
        ("ftp://93.184.215.14/hook", "must use https"),
        ("", "url is required"),
        ("https:///nohost", "no host"),
        ("https://user:pw@93.184.215.14/hook", "credentials"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_url(url)


def test_http_only_when_private_allowed() -> None:
    assert validate_url("http://127.0.0.1:8080/x", allow_private=True) == "http://127.0.0.1:8080/x"


def test_event_type_filters() -> None:
    assert validate_event_types(["order.*", "product.updated", "order.*"]) == ["order.*", "product.updated"]
    for bad in ([], ["Order.Created"], ["order.*.x"], ["*.created"], [""]):
        with pytest.raises(ValidationError):
            validate_event_types(bad)
    assert matches(["*"], "anything.at_all")
    assert matches(["order.*"], "order.confirmed")
    assert not matches(["order.*"], "orders.confirmed")
    assert not matches(["order.*"], "order")
    assert matches(["product.updated"], "product.updated")
    assert not matches(["product.updated"], "product.deleted")
