"""Each fault, observed from a real client: errors, Retry-After, rate limits, latency, hangs, slow bodies."""

from __future__ import annotations

import asyncio
import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from buttress.testing import Fault, Latency, Upstream
from tests.testing._wait import wait_for_calls


def _statuses(up: Upstream, client: httpx.Client, domain: str, count: int) -> list[int]:
    return [client.get(up.url(domain, "/items")).status_code for _ in range(count)]


def test_error_rate_and_repeatable_sequences(client: httpx.Client) -> None:
    flaky = Fault(errors={503: 0.3})
    with Upstream(seed=0) as first, Upstream(seed=0) as again, Upstream(seed=1) as other:
        for up in (first, again, other):
            up.add("flaky", flaky)
        statuses = _statuses(first, client, "flaky", 1000)
        assert 255 <= statuses.count(503) <= 345
        assert set(statuses) == {200, 503}
        assert _statuses(again, client, "flaky", 200) == statuses[:200]
        assert _statuses(other, client, "flaky", 200) != statuses[:200]
        assert first.outcomes("flaky") == {"200": statuses.count(200), "503": statuses.count(503)}


def test_injected_error_body(upstream: Upstream, client: httpx.Client) -> None:
    upstream.set_fault("default", Fault(errors={500: 1.0}))
    response = client.get(upstream.url(path="/x"))
    assert response.status_code == 500
    assert response.json() == {"error": "injected", "status": 500}
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(("retry_after", "header"), [(1, "1"), (2.0, "2"), (0.5, "0.5")])
def test_retry_after_in_seconds(
    upstream: Upstream, client: httpx.Client, retry_after: float, header: str
) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}, retry_after=retry_after))
    upstream.route("default", "/ok", Fault(retry_after=retry_after))
    assert client.get(upstream.url()).headers["retry-after"] == header
    assert client.get(upstream.url(path="/status/429")).headers["retry-after"] == header
    assert "retry-after" not in client.get(upstream.url(path="/ok")).headers
    assert "retry-after" not in client.get(upstream.url(path="/ok/status/500")).headers


def test_retry_after_as_http_date(upstream: Upstream, client: httpx.Client) -> None:
    upstream.set_fault("default", Fault(errors={429: 1.0}, retry_after="date", retry_after_seconds=3))
    before = time.time()
    response = client.get(upstream.url())
    assert response.status_code == 429
    when = parsedate_to_datetime(response.headers["retry-after"]).timestamp()
    assert before + 2 <= when <= time.time() + 5


def test_rate_limit_answers_429_beyond_the_rate(upstream: Upstream, client: httpx.Client) -> None:
    upstream.add("limited", Fault(rate_limit="10/s"))
    started = time.monotonic()
    responses = [client.get(upstream.url("limited")) for _ in range(30)]
    elapsed = time.monotonic() - started
    passed = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert 1 <= len(passed) <= 1 + int(elapsed / 0.1)  # burst 1: one slot per 100 ms, whatever the speed
    assert len(passed) + len(limited) == 30
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert responses[0].status_code == 200


def test_rate_limit_uses_an_explicit_retry_after(upstream: Upstream, client: httpx.Client) -> None:
    upstream.add("limited", Fault(rate_limit="1/minute", retry_after=7))
    assert client.get(upstream.url("limited")).status_code == 200
    refused = client.get(upstream.url("limited"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "7"


def test_rate_limit_retry_after_counts_up_to_the_free_slot(upstream: Upstream, client: httpx.Client) -> None:
    upstream.add("limited", Fault(rate_limit="1/minute"))
    client.get(upstream.url("limited"))
    assert 59 <= int(client.get(upstream.url("limited")).headers["retry-after"]) <= 60


def test_fixed_latency_delays_the_answer(upstream: Upstream, client: httpx.Client) -> None:
    upstream.route("default", "/slow-path", Fault(latency=0.3))
    started = time.perf_counter()
    assert client.get(upstream.url(path="/slow-path")).status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    client.get(upstream.url(path="/fast"))
    assert time.perf_counter() - started < 0.3


def test_latency_applies_to_errors_too(upstream: Upstream, client: httpx.Client) -> None:
    upstream.set_fault("default", Fault(latency=Latency.uniform(0.05, 0.1), errors={503: 1.0}))
    started = time.perf_counter()
    assert client.get(upstream.url()).status_code == 503
    assert time.perf_counter() - started >= 0.05


def test_slow_body_arrives_in_spaced_chunks(upstream: Upstream, client: httpx.Client) -> None:
    upstream.set_fault("default", Fault(slow_body=0.1, body_chunks=4))
    arrivals: list[float] = []
    received = b""
    with client.stream("GET", upstream.url(path="/bytes/4000")) as response:
        assert response.headers["content-length"] == "4000"
        for chunk in response.iter_raw():
            arrivals.append(time.perf_counter())
            received += chunk
    assert received == (b"buttress" * 500)
    assert len(arrivals) >= 3
    assert 0.25 <= arrivals[-1] - arrivals[0] < 3.0


def test_slow_body_of_a_large_pattern_body(upstream: Upstream, client: httpx.Client) -> None:
    upstream.set_fault("default", Fault(slow_body=0.01, body_chunks=3))
    response = client.get(upstream.url(path="/bytes/200003"))
    assert response.content == (b"buttress" * 25001)[:200003]


async def test_a_hang_does_not_block_other_requests(upstream: Upstream) -> None:
    upstream.route("default", "/hang", Fault(hang=1.0))
    async with httpx.AsyncClient(timeout=5.0) as client:
        hanging = asyncio.ensure_future(client.get(upstream.url(path="/hang"), timeout=1.0))
        await asyncio.sleep(0)  # let the hanging request go out first
        answered = [(await client.get(upstream.url(path=f"/ok/{i}"))).status_code for i in range(5)]
        assert upstream.calls(path="/hang") == 1
        assert not hanging.done()
        with pytest.raises(httpx.ReadTimeout):
            await hanging
    assert answered == [200] * 5
    assert upstream.outcomes() == {"hang": 1, "200": 5}


def test_stop_ends_hanging_and_delayed_requests() -> None:
    up = Upstream().start()
    up.route("default", "/hang", Fault(hang=1.0))
    up.route("default", "/slow", Fault(latency=30.0))
    errors: list[Exception] = []

    def send(path: str) -> None:
        try:
            httpx.get(up.url(path=path), timeout=10.0)
        except httpx.TransportError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(path,)) for path in ("/hang", "/slow")]
    for thread in threads:
        thread.start()
    wait_for_calls(up, 2)
    started = time.perf_counter()
    up.stop()
    for thread in threads:
        thread.join(5.0)
    assert time.perf_counter() - started < 3.0
    assert len(errors) == 2
    assert up.outcomes() == {"hang": 1, "200": 1}


def test_zero_probability_errors_never_happen(upstream: Upstream, client: httpx.Client) -> None:
    upstream.set_fault("default", Fault(errors={503: 0.0, 500: 1.0}))
    assert {client.get(upstream.url()).status_code for _ in range(20)} == {500}
