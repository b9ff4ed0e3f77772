"""Per-host breaker, limiter, bulkhead and deadline against real upstream domains."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from buttress.clock import FakeClock
from buttress.errors import BulkheadFull, CircuitOpen, DeadlineExceeded, RateLimited
from buttress.http import AsyncHttpClient, HttpClient
from buttress.testing import Fault, Latency, Upstream
from tests.http_client.conftest import MakePolicies
from tests.resilience._observed import Observed

ONE_ATTEMPT = {"retry": {"attempts": 1}}


def test_the_breaker_opens_for_the_failing_host_only(
    upstream: Upstream, make_policies: MakePolicies, clock: FakeClock, observed: Observed
) -> None:
    upstream.add("bad", Fault(errors={503: 1.0}))
    policies = make_policies({"default": {**ONE_ATTEMPT, "breaker": {"consecutive_failures": 5}}})
    with HttpClient(policies=policies, raise_for_status=False) as client:
        for _ in range(5):
            assert client.get(upstream.url("bad")).status_code == 503
        with pytest.raises(CircuitOpen) as caught:
            client.get(upstream.url("bad", "/items?page=2"))
        assert upstream.calls("bad") == 5  # the sixth never left the process
        assert caught.value.context["host"] == upstream.host("bad")
        assert caught.value.context["url"] == upstream.url("bad", "/items")
        for _ in range(20):  # the healthy host is untouched
            assert client.get(upstream.url()).status_code == 200
        [bad] = client.stats(upstream.host("bad"))
        assert bad.breaker_state == "open"
        assert bad.breaker_openings == 1
        assert bad.rejected == {"breaker": 1}
        [good] = client.stats(upstream.host())
        assert good.breaker_state == "closed"

        clock.advance(30)  # the open duration: one probe goes out, fails, and the breaker opens again
        assert client.get(upstream.url("bad")).status_code == 503
        assert upstream.calls("bad") == 6
        with pytest.raises(CircuitOpen):
            client.get(upstream.url("bad"))
        assert upstream.calls("bad") == 6

        upstream.set_fault(
            "bad", Fault()
        )  # the host recovers; after the (doubled) open time a probe closes it
        clock.advance(60)
        assert client.get(upstream.url("bad")).status_code == 200
        assert client.get(upstream.url("bad")).status_code == 200
        assert upstream.calls("bad") == 8
        assert client.stats(upstream.host("bad"))[0].breaker_state == "closed"
    transitions = [p["to"] for t, p in observed.events() if t.startswith("resilience.breaker.") and "to" in p]
    assert transitions == ["open", "half_open", "open", "half_open", "closed"]


def test_a_retried_request_returns_the_last_answer_when_the_breaker_opens_mid_way(
    upstream: Upstream, make_policies: MakePolicies
) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    policies = make_policies({"default": {"retry": {"attempts": 5}, "breaker": {"consecutive_failures": 2}}})
    with HttpClient(policies=policies, raise_for_status=False) as client:
        response = client.get(upstream.url())
    assert response.status_code == 503  # what the server said, not the local refusal
    assert response.extensions["buttress.attempts"] == 2
    assert upstream.calls() == 2


def test_only_breaker_statuses_count_as_failures(upstream: Upstream, make_policies: MakePolicies) -> None:
    policies = make_policies({"default": {**ONE_ATTEMPT, "breaker": {"consecutive_failures": 2}}})
    with HttpClient(policies=policies, raise_for_status=False) as client:
        for _ in range(5):
            client.get(upstream.url(path="/status/404"))
            client.get(upstream.url(path="/status/429"))
        assert client.stats()[0].breaker_state == "closed"


def test_the_limiter_spaces_calls_to_the_configured_rate(
    upstream: Upstream, make_policies: MakePolicies, clock: FakeClock
) -> None:
    policies = make_policies({"default": {"limiter": {"rate": "10/s", "burst": 1}}})
    with HttpClient(policies=policies) as client:
        for _ in range(6):
            client.get(upstream.url())
        [stats] = client.stats()
    assert upstream.calls() == 6
    assert clock.sleeps == pytest.approx([0.1] * 5)  # the first goes at once, then one every 100 ms
    assert stats.limiter_waits == 5
    assert stats.limiter_wait_seconds == pytest.approx(0.5)


def test_a_limiter_wait_longer_than_allowed_is_refused(
    upstream: Upstream, make_policies: MakePolicies, clock: FakeClock
) -> None:
    policies = make_policies({"default": {"limiter": {"rate": "1/minute", "max_wait": 5}}})
    with HttpClient(policies=policies) as client:
        client.get(upstream.url())
        with pytest.raises(RateLimited) as caught:
            client.get(upstream.url())
        assert client.stats()[0].rejected == {"limiter": 1}
    assert caught.value.retry_after == pytest.approx(60, abs=0.1)
    assert upstream.calls() == 1
    assert clock.sleeps == []


def test_the_limiter_is_per_host(upstream: Upstream, make_policies: MakePolicies, clock: FakeClock) -> None:
    upstream.add("other")
    policies = make_policies({"default": {"limiter": {"rate": "1/minute", "max_wait": 0}}})
    with HttpClient(policies=policies) as client:
        client.get(upstream.url())
        client.get(upstream.url("other"))  # its own bucket: no wait
    assert clock.sleeps == []


def test_a_named_policy_applies_to_the_hosts_it_claims(
    upstream: Upstream, make_policies: MakePolicies
) -> None:
    upstream.add("api")
    config = {"policies": {"api": {"hosts": [upstream.host("api")], "retry": {"attempts": 1}}}}
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    upstream.set_fault("api", Fault(errors={503: 1.0}))
    with HttpClient(policies=make_policies(config), raise_for_status=False) as client:
        client.get(upstream.url())
        client.get(upstream.url("api"))
        assert {s.host: s.policy for s in client.stats()} == {
            upstream.host(): "default",
            upstream.host("api"): "api",
        }
    assert upstream.calls() == 3
    assert upstream.calls("api") == 1


def test_the_deadline_holds_against_a_hanging_host(upstream: Upstream, make_policies: MakePolicies) -> None:
    from buttress.clock import SYSTEM_CLOCK

    upstream.set_fault("default", Fault(hang=1.0))
    with HttpClient(policies=make_policies(clock=SYSTEM_CLOCK)) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            client.get(upstream.url(path="/hang"), deadline=0.4)
        elapsed = time.monotonic() - started
    assert 0.35 <= elapsed < 1.0
    assert caught.value.context["attempts"] == 1
    assert caught.value.context["host"] == upstream.host()


def test_the_deadline_bounds_a_body_that_trickles_in(upstream: Upstream, make_policies: MakePolicies) -> None:
    from buttress.clock import SYSTEM_CLOCK

    upstream.set_fault("default", Fault(slow_body=0.2, body_chunks=8))
    with HttpClient(policies=make_policies(clock=SYSTEM_CLOCK)) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.get(upstream.url(path="/bytes/8000"), deadline=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0  # 8 chunks 0.2 s apart would take 1.6 s


def test_async_deadline_holds_too(upstream: Upstream, make_policies: MakePolicies) -> None:
    from buttress.clock import SYSTEM_CLOCK

    upstream.set_fault("default", Fault(hang=1.0))

    async def main() -> float:
        async with AsyncHttpClient(policies=make_policies(clock=SYSTEM_CLOCK)) as client:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await client.get(upstream.url(), deadline=0.3)
            return time.monotonic() - started

    assert 0.25 <= asyncio.run(main()) < 1.0


def test_the_bulkhead_caps_requests_in_flight_per_host(
    upstream: Upstream, make_policies: MakePolicies
) -> None:
    from buttress.clock import SYSTEM_CLOCK

    upstream.set_fault("default", Fault(latency=Latency.fixed(0.3)))
    upstream.add("other", Fault(latency=Latency.fixed(0.3)))
    policies = make_policies(
        {"default": {"bulkhead": {"max_concurrent": 2, "max_queued": 0}}}, clock=SYSTEM_CLOCK
    )

    async def main() -> list[object]:
        async with AsyncHttpClient(policies=policies) as client:
            calls = [client.get(upstream.url()) for _ in range(3)] + [client.get(upstream.url("other"))]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert sum(isinstance(r, BulkheadFull) for r in results) == 1
    assert not isinstance(results[3], BaseException)  # another host has its own slots
    assert upstream.calls() == 2


def test_threads_share_a_host_breaker(upstream: Upstream, make_policies: MakePolicies) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    policies = make_policies({"default": {**ONE_ATTEMPT, "breaker": {"consecutive_failures": 10}}})
    outcomes: list[str] = []
    lock = threading.Lock()
    with HttpClient(policies=policies, raise_for_status=False) as client:

        def work() -> None:
            for _ in range(10):
                try:
                    client.get(upstream.url())
                    outcome = "sent"
                except CircuitOpen:
                    outcome = "refused"
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(outcomes) == 40
    assert 10 <= outcomes.count("sent") <= 10 + 3  # the trip; at most one in flight per other thread
    assert upstream.calls() == outcomes.count("sent")
