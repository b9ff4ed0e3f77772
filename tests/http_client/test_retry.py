"""Retries against a real upstream: exact counts per status, Retry-After, idempotency, what callers get."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from buttress.clock import FakeClock
from buttress.errors import UpstreamError, UpstreamStatusError
from buttress.http import HttpClient, attempts_of
from buttress.testing import Fault, Upstream
from tests.http_client.conftest import MakePolicies
from tests.resilience._observed import Observed

NO_BREAKER = {"default": {"breaker": {"enabled": False}, "retry": {"budget_ratio": None}}}


@pytest.fixture
def client(make_policies: MakePolicies) -> Iterator[HttpClient]:
    """Retry alone: the breaker is off, so a run of failures does not short-circuit the next request."""
    with HttpClient(policies=make_policies(NO_BREAKER), raise_for_status=False) as client:
        yield client


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_retryable_status_is_sent_exactly_attempts_times(
    upstream: Upstream, client: HttpClient, clock: FakeClock, status: int
) -> None:
    response = client.get(upstream.url(path=f"/status/{status}"))
    assert response.status_code == status
    assert upstream.calls(path=f"/status/{status}") == 3
    assert attempts_of(response) == 3
    assert len(clock.sleeps) == 2  # one wait before each retry, none after the last attempt


@pytest.mark.parametrize("status", [400, 401, 404, 409, 501])
def test_other_statuses_are_not_retried(
    upstream: Upstream, client: HttpClient, clock: FakeClock, status: int
) -> None:
    response = client.get(upstream.url(path=f"/status/{status}"))
    assert response.status_code == status
    assert upstream.calls(path=f"/status/{status}") == 1
    assert clock.sleeps == []


def test_attempts_and_statuses_come_from_the_policy(upstream: Upstream, make_policies: MakePolicies) -> None:
    policies = make_policies({"default": {"retry": {"attempts": 5, "statuses": [404]}}})
    with HttpClient(policies=policies, raise_for_status=False) as client:
        assert client.get(upstream.url(path="/status/404")).status_code == 404
        assert client.get(upstream.url(path="/status/503")).status_code == 503
    assert upstream.calls(path="/status/404") == 5
    assert upstream.calls(path="/status/503") == 1


def test_a_flaky_upstream_is_retried_until_it_answers(upstream: Upstream, client: HttpClient) -> None:
    upstream.add("flaky", Fault(errors={503: 0.5}))
    answers = [client.get(upstream.url("flaky", f"/item/{n}")) for n in range(40)]
    assert sum(r.status_code == 200 for r in answers) >= 34  # 1 - 0.5**3 = 87.5% succeed in 3 attempts
    assert upstream.calls("flaky") == sum(attempts_of(r) or 0 for r in answers)


def test_retry_after_in_seconds_is_waited(upstream: Upstream, client: HttpClient, clock: FakeClock) -> None:
    upstream.set_fault("default", Fault(errors={429: 1.0}, retry_after=4))
    response = client.get(upstream.url())
    assert response.status_code == 429
    assert upstream.calls() == 3
    assert clock.sleeps == [4.0, 4.0]  # longer than the backoff (0.5 s, 1 s at most with full jitter)


def test_retry_after_as_an_http_date_is_waited(upstream: Upstream, make_policies: MakePolicies) -> None:
    clock = FakeClock(start_time=time.time())  # the server's date is real wall time
    upstream.set_fault("default", Fault(errors={503: 1.0}, retry_after="date", retry_after_seconds=5))
    with HttpClient(policies=make_policies(clock=clock), raise_for_status=False) as client:
        assert client.get(upstream.url()).status_code == 503
    assert upstream.calls() == 3
    assert len(clock.sleeps) == 2
    # An HTTP-date has whole seconds. (The fake clock then moved 5 s on while the server's did not, so the
    # second date is "now" for the client, and the backoff delay decides.)
    assert 3.5 <= clock.sleeps[0] <= 6.5


def test_a_retry_after_longer_than_the_cap_returns_at_once(
    upstream: Upstream, make_policies: MakePolicies
) -> None:
    upstream.set_fault("default", Fault(errors={429: 1.0}, retry_after=120))
    with HttpClient(policies=make_policies()) as client, pytest.raises(UpstreamStatusError) as caught:
        client.get(upstream.url(path="/quota"))
    assert upstream.calls() == 1
    error = caught.value
    assert error.status_code == 429
    assert error.context["retry_after"] == 120.0
    assert error.context["attempts"] == 1


def test_a_retry_that_would_end_past_the_deadline_is_not_made(
    upstream: Upstream, make_policies: MakePolicies, clock: FakeClock
) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}, retry_after=3))
    with HttpClient(policies=make_policies({"default": {"deadline": 5}}), raise_for_status=False) as client:
        response = client.get(upstream.url())
    assert response.status_code == 503
    assert upstream.calls() == 2  # waited 3 s once; a second 3 s wait would end at 6 s > 5 s
    assert clock.sleeps == [3.0]


def test_post_is_not_retried_without_an_idempotency_key(upstream: Upstream, client: HttpClient) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    assert client.post(upstream.url(path="/orders"), json={"n": 1}).status_code == 503
    assert upstream.calls(path="/orders") == 1


def test_post_with_an_idempotency_key_is_retried(upstream: Upstream, client: HttpClient) -> None:
    upstream.set_fault("default", Fault(errors={503: 0.5}))
    responses = [
        client.post(upstream.url(path=f"/orders/{n}"), json={"n": n}, idempotency_key=f"order-{n}")
        for n in range(20)
    ]
    assert upstream.calls() == sum(attempts_of(r) or 0 for r in responses) > 20
    ok = [r for r in responses if r.status_code == 200]
    assert ok
    assert all(r.headers["idempotency-key"].startswith("order-") for r in ok)


def test_the_caller_can_opt_in_and_out(upstream: Upstream, client: HttpClient) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    client.patch(upstream.url(path="/opt-in"), json={}, retry=True)
    client.get(upstream.url(path="/opt-out"), retry=False)
    assert upstream.calls(path="/opt-in") == 3
    assert upstream.calls(path="/opt-out") == 1


def test_a_streamed_request_body_is_never_retried(upstream: Upstream, client: HttpClient) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    response = client.put(upstream.url(path="/upload"), content=iter([b"part-1", b"part-2"]))
    assert response.status_code == 503
    assert upstream.calls(path="/upload") == 1


def test_a_refused_connection_is_retried_even_for_post(
    upstream: Upstream, client: HttpClient, clock: FakeClock
) -> None:
    upstream.set_down("default", down=True)
    with pytest.raises(UpstreamError) as caught:
        client.post(upstream.url(path="/orders?token=secret"), json={})
    error = caught.value
    assert type(error) is UpstreamError
    assert error.context["attempts"] == 3
    assert error.context["method"] == "POST"
    assert error.context["host"] == upstream.host()
    assert error.context["url"] == upstream.url(path="/orders")  # no query string: it may hold secrets
    assert "secret" not in str(error)
    assert error.context["error"] == "ConnectError"
    assert len(clock.sleeps) == 2
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_a_reset_connection_is_retried_for_get(upstream: Upstream, client: HttpClient) -> None:
    upstream.set_fault("default", Fault(reset=0.3))
    attempts, answered = 0, 0
    for n in range(20):
        try:
            response = client.get(upstream.url(path=f"/r/{n}"))
        except UpstreamError as error:  # three resets in a row: 2.7% of the requests
            attempts += error.context["attempts"]
        else:
            answered += 1
            attempts += attempts_of(response) or 0
    assert answered >= 17
    assert upstream.outcomes()["reset"] >= 1
    assert upstream.calls() == attempts > 20


def test_a_reset_post_is_not_retried(upstream: Upstream, client: HttpClient) -> None:
    upstream.set_fault("default", Fault(reset=1.0))
    with pytest.raises(UpstreamError) as caught:
        client.post(upstream.url(path="/pay"), json={"amount": 1})
    assert caught.value.context["attempts"] == 1
    assert upstream.calls(path="/pay") == 1


def test_retries_and_give_ups_are_counted_and_announced(
    upstream: Upstream, client: HttpClient, observed: Observed
) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    client.get(upstream.url(path="/x?key=secret"))
    upstream.set_down("default", down=True)
    with pytest.raises(UpstreamError):
        client.get(upstream.url(path="/y"))
    retries = [payload for topic, payload in observed.events() if topic == "http.retry"]
    assert [r["reason"] for r in retries] == ["503", "503", "ConnectError", "ConnectError"]
    assert all("secret" not in r["url"] for r in retries)
    failed = [payload for topic, payload in observed.events() if topic == "http.failed"]
    assert failed == [
        {
            "host": upstream.host(),
            "method": "GET",
            "url": upstream.url(path="/y"),
            "attempts": 3,
            "reason": "ConnectError",
        }
    ]
    [stats] = client.stats()
    assert stats.retries == 4
    assert stats.status_classes == {"5xx": 3, "error": 3}
    assert stats.requests == 6
    host = upstream.host()
    requests = {
        s["labels"]["status_class"]: s["value"] for s in observed.metric("buttress_http_requests_total")
    }
    assert requests == {"5xx": 3.0, "error": 3.0}
    assert observed.metric("buttress_http_retries_total")[0] == {"labels": {"host": host}, "value": 4.0}


def test_the_retry_budget_caps_retries_per_host(upstream: Upstream, make_policies: MakePolicies) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    policies = make_policies({"default": {"retry": {"budget_ratio": 0.1}, "breaker": {"enabled": False}}})
    with HttpClient(policies=policies, raise_for_status=False) as client:
        for n in range(30):
            client.get(upstream.url(path=f"/b/{n}"))
    # 30 calls; the budget allows 10 retries plus 10% of the calls per window, far below 2 per call
    assert 30 < upstream.calls() <= 30 + 10 + 3 + 1
