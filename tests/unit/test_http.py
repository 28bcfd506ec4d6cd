"""connector.infra.http: sessions, translation of HTTP failures into the error taxonomy, and transport retries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
import responses

from connector.domain.errors import AuthError, PermanentError, RetryableError
from connector.domain.ports import HttpOptions
from connector.infra import http

URL = "https://store.example.com/api/items"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(http, "_sleep", recorded.append)
    return recorded


def _get(
    status: int, body: str = "", headers: dict[str, str] | None = None, url: str = URL
) -> requests.Response:
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, url, status=status, body=body, headers=headers or {})
        return requests.get(url, timeout=5)


def test_build_session_sets_user_agent_and_shares_nothing() -> None:
    first = http.build_session(HttpOptions(user_agent="Storelink-test/9"))
    second = http.build_session(HttpOptions(user_agent="Other/1"))
    assert first is not second
    assert first.headers["User-Agent"] == "Storelink-test/9"
    assert second.headers["User-Agent"] == "Other/1"


@responses.activate
def test_session_sends_user_agent() -> None:
    responses.add(responses.GET, URL, body="ok")
    http.build_session(HttpOptions(user_agent="Storelink-test/9")).get(URL, timeout=5)
    assert responses.calls[0].request.headers["User-Agent"] == "Storelink-test/9"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert http.parse_retry_after(header, now=now) == expected


def test_404_is_permanent_with_status_and_body_excerpt() -> None:
    error = http.translate(_get(404, body='{"error": "no such feed"}'))
    assert type(error) is PermanentError
    assert error.code == "http_404"
    assert "404" in error.message
    assert "no such feed" in error.message
    assert error.details["status"] == 404


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors(status: int) -> None:
    error = http.translate(_get(status, body="denied"))
    assert isinstance(error, AuthError)
    assert str(status) in error.message


@pytest.mark.parametrize("status", [400, 409, 410, 422])
def test_other_4xx_are_permanent_not_auth(status: int) -> None:
    error = http.translate(_get(status))
    assert isinstance(error, PermanentError)
    assert not isinstance(error, AuthError)
    assert error.code == f"http_{status}"


def test_429_is_retryable_with_retry_after_seconds() -> None:
    error = http.translate(_get(429, headers={"Retry-After": "7"}))
    assert isinstance(error, RetryableError)
    assert error.retry_after == 7.0
    assert error.code == "rate_limited"


def test_429_with_http_date_retry_after() -> None:
    when = datetime.now(UTC).timestamp() + 3600
    header = datetime.fromtimestamp(when, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    error = http.translate(_get(429, headers={"Retry-After": header}))
    assert isinstance(error, RetryableError)
    assert error.retry_after is not None
    assert 3590 <= error.retry_after <= 3600


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_5xx_and_408_are_retryable(status: int) -> None:
    error = http.translate(_get(status))
    assert isinstance(error, RetryableError)
    assert error.retry_after is None


def test_503_carries_retry_after_when_given() -> None:
    error = http.translate(_get(503, headers={"Retry-After": "12"}))
    assert isinstance(error, RetryableError)
    assert error.retry_after == 12.0


def test_success_is_not_an_error() -> None:
    response = _get(200, body="fine")
    assert http.error_for_response(response) is None
    assert http.raise_for_status(response) is response
    with pytest.raises(TypeError):
        http.translate(response)


def test_body_excerpt_is_short_and_collapsed() -> None:
    error = http.translate(_get(400, body="bad\n\n   request " + "x" * 10_000))
    excerpt = error.details["body"]
    assert isinstance(excerpt, str)
    assert excerpt.startswith("bad request x")
    assert len(excerpt) <= http.EXCERPT_CHARS
    assert excerpt.endswith("…")


def test_messages_leave_out_query_and_userinfo() -> None:
    url = "https://user:pw@feeds.example.com/feed.csv?token=SECRET#frag"
    error = http.translate(_get(404, url=url))
    assert "SECRET" not in error.message
    assert "pw" not in error.message
    assert "https://feeds.example.com/feed.csv" in error.message
    assert http.safe_url("https://feeds.example.com:8443/a?b=c") == "https://feeds.example.com:8443/a"


def test_raise_for_status_raises_the_taxonomy_error() -> None:
    with pytest.raises(AuthError):
        http.raise_for_status(_get(401))


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (requests.ConnectionError("refused"), RetryableError, "network"),
        (requests.exceptions.ChunkedEncodingError("broken"), RetryableError, "network"),
        (requests.ReadTimeout("slow"), RetryableError, "timeout"),
        (requests.ConnectTimeout("slow"), RetryableError, "timeout"),
        (requests.exceptions.InvalidURL("bad"), PermanentError, "invalid_url"),
        (requests.exceptions.MissingSchema("bad"), PermanentError, "invalid_request"),
        (requests.TooManyRedirects("loop"), PermanentError, "too_many_redirects"),
        (ConnectionResetError(104, "reset"), RetryableError, "network"),
    ],
)
def test_exceptions_translate(exc: Exception, kind: type[Exception], code: str) -> None:
    error = http.translate(exc)
    assert type(error) is kind
    assert error.code == code


def test_unrelated_exception_is_not_translated() -> None:
    with pytest.raises(TypeError):
        http.translate(KeyError("x"))


@responses.activate
def test_transport_errors_turns_connection_failures_into_retryable() -> None:
    responses.add(responses.GET, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(RetryableError) as caught, http.transport_errors():
        requests.get(URL, timeout=5)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert "store.example.com" in caught.value.message


def test_retrying_retries_then_succeeds(sleeps: list[float]) -> None:
    calls: list[int] = []

    @http.retrying(attempts=3, initial=0.5, maximum=8)
    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise RetryableError("blip")
        return value * 2

    assert flaky(21) == 42
    assert calls == [21, 21, 21]
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[1] <= 1.0


def test_retrying_reraises_the_last_retryable_error(sleeps: list[float]) -> None:
    raised: list[RetryableError] = []

    @http.retrying(attempts=4)
    def always_down() -> None:
        error = RetryableError(f"down {len(raised)}")
        raised.append(error)
        raise error

    with pytest.raises(RetryableError) as caught:
        always_down()
    assert len(raised) == 4
    assert caught.value is raised[-1]
    assert len(sleeps) == 3


def test_retrying_does_not_retry_permanent_errors(sleeps: list[float]) -> None:
    calls = 0

    @http.retrying()
    def rejected() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("no")

    with pytest.raises(PermanentError):
        rejected()
    assert calls == 1
    assert sleeps == []


def test_retrying_honours_retry_after(sleeps: list[float]) -> None:
    outcomes: list[RetryableError | None] = [RetryableError("slow down", retry_after=2.5), None]

    @http.retrying(attempts=3)
    def limited() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "done"

    assert limited() == "done"
    assert sleeps == [2.5]


def test_retrying_hands_long_retry_after_to_the_caller_at_once(sleeps: list[float]) -> None:
    calls = 0

    @http.retrying(attempts=5, max_retry_after=30)
    def limited() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("come back later", retry_after=600)

    with pytest.raises(RetryableError) as caught:
        limited()
    assert caught.value.retry_after == 600
    assert calls == 1
    assert sleeps == []


def test_retrying_backoff_is_capped(sleeps: list[float]) -> None:
    @http.retrying(attempts=8, initial=1, maximum=3)
    def down() -> None:
        raise RetryableError("down")

    with pytest.raises(RetryableError):
        down()
    assert len(sleeps) == 7
    assert all(0 <= wait <= 3 for wait in sleeps)


def test_retrying_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        http.retrying(attempts=0)
