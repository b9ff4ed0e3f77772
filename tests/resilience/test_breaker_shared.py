"""The Redis breaker's copy in each process: no round trip on a CLOSED success, trips pushed to the others.

The CLOSED success path is served from this process's copy of the shared state; every transition is
pushed to every process (pub/sub), a copy is re-read at least every ``sync_interval``, successes are
batched and written by the next script, and the outage policy still applies once Redis is found gone.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from buttress._redis import Script, script_names
from buttress.clock import FakeClock
from buttress.errors import CircuitOpen
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import CircuitBreaker, RedisState
from tests._redis_server import RedisServer

START = 1_000_000.0


class Down(Exception):
    pass


def _down() -> None:
    raise Down("upstream is down")


def _evalshas(client: redis.Redis) -> int:
    """EVALSHAs the server ran (the breaker scripts are loaded first, so none fails with NOSCRIPT)."""
    for name in script_names():
        if name.startswith("breaker_"):
            client.script_load(Script.file(name).source)
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own: its command counts are this test's alone."""
    with RedisServer(tmp_path) as running:
        yield running


def _state(url: str, prefix: str, clock: FakeClock, **options: object) -> RedisState:
    return RedisState(url, prefix=prefix, clock=clock, metrics=MetricsRegistry(), **options)  # type: ignore[arg-type]


def test_a_closed_success_makes_no_round_trip(server: RedisServer) -> None:
    clock = FakeClock(start_monotonic=START, start_time=START)
    state = _state(server.url, "quiet", clock)
    breaker = CircuitBreaker(
        "quiet", consecutive_failures=3, store=state, clock=clock, metrics=MetricsRegistry()
    )
    client = redis.Redis.from_url(server.url)
    try:
        breaker.call(lambda: "ok")  # the first call reads the state and starts the subscriber
        assert state.breaker_feed().subscriber.subscribed.wait(10)
        breaker.call(lambda: "ok")  # read again: the subscription may have begun after the first read
        before = _evalshas(client)
        for _ in range(1000):
            assert breaker.call(lambda: "ok") == "ok"
        assert _evalshas(client) == before  # served by this process's copy: Redis was not asked
        with contextlib.suppress(Down):
            breaker.call(_down)
        assert _evalshas(client) - before == 1  # a failure is written at once, the batch with it
        snap = breaker.snapshot()
        assert (snap.calls, snap.failures) == (100, 1)  # the count window holds the last 100 calls
        clock.advance(state.sync_interval)
        breaker.call(lambda: "ok")  # the copy is due: one script re-reads it (and writes the batch)
        breaker.call(lambda: "ok")
        assert _evalshas(client) - before == 3
    finally:
        client.close()
        state.close()


async def test_a_closed_async_success_makes_no_round_trip(server: RedisServer) -> None:
    clock = FakeClock(start_monotonic=START, start_time=START)
    state = _state(server.url, "quiet-async", clock)
    breaker = CircuitBreaker("quiet", store=state, clock=clock, metrics=MetricsRegistry())
    client = redis.Redis.from_url(server.url)

    async def ok() -> str:
        return "ok"

    try:
        await breaker.acall(ok)
        assert state.breaker_feed().subscriber.subscribed.wait(10)
        await breaker.acall(ok)
        before = _evalshas(client)
        for _ in range(200):
            assert await breaker.acall(ok) == "ok"
        assert _evalshas(client) == before
        assert (await breaker.asnapshot()).calls == 100
    finally:
        client.close()
        await state.aclose()


def test_batched_successes_are_written_before_the_next_outcome(redis_url: str) -> None:
    clock = FakeClock(start_monotonic=START, start_time=START)
    prefix = f"batch-{uuid.uuid4().hex}"
    here, there = _state(redis_url, prefix, clock), _state(redis_url, prefix, clock)
    options = {"consecutive_failures": 2, "clock": clock, "metrics": MetricsRegistry()}
    writer = CircuitBreaker("shared", store=here, **options)  # type: ignore[arg-type]
    reader = CircuitBreaker("shared", store=there, **options)  # type: ignore[arg-type]
    try:
        with contextlib.suppress(Down):
            writer.call(_down)
        for _ in range(5):
            writer.call(lambda: "ok")  # counted in this process only, for now
        assert reader.snapshot().calls == 1
        with contextlib.suppress(Down):
            writer.call(_down)  # the batch first, then the failure: the successes broke the streak
        snap = reader.snapshot()
        assert (snap.state, snap.calls, snap.failures) == ("closed", 7, 2)
    finally:
        here.close()
        there.close()


def test_a_trip_is_pushed_to_another_connection_within_milliseconds(redis_url: str) -> None:
    prefix = f"push-{uuid.uuid4().hex}"
    here, there = RedisState(redis_url, prefix=prefix), RedisState(redis_url, prefix=prefix)
    options = {"consecutive_failures": 1, "open_duration": 300, "metrics": MetricsRegistry()}
    tripper = CircuitBreaker("shared", store=here, **options)  # type: ignore[arg-type]
    other = CircuitBreaker("shared", store=there, **options)  # type: ignore[arg-type]
    upstream = redis.Redis.from_url(redis_url)  # the other breaker's calls do I/O, as real calls do
    delays: list[float] = []
    try:
        other.call(upstream.ping)
        assert there.breaker_feed().subscriber.subscribed.wait(10)
        for _ in range(8):
            tripper.reset()
            while True:  # until the reset reached the other copy (pushed too)
                with contextlib.suppress(CircuitOpen):
                    other.call(upstream.ping)
                    break
            started = time.perf_counter()
            with contextlib.suppress(Down):
                tripper.call(_down)
            while True:
                try:
                    other.call(upstream.ping)
                except CircuitOpen:
                    break
                assert time.perf_counter() - started < 1.0, "the trip never reached the other copy"
            delays.append(time.perf_counter() - started)
    finally:
        upstream.close()
        here.close()
        there.close()
    typical = statistics.median(delays[1:])  # the first round warms the connections up
    assert typical < 0.005, [f"{d * 1000:.2f} ms" for d in delays]


def test_a_lost_push_is_corrected_by_the_next_read_within_sync_interval(redis_url: str) -> None:
    clock = FakeClock(start_monotonic=START, start_time=START)
    prefix = f"lost-{uuid.uuid4().hex}"
    here, there = _state(redis_url, prefix, clock), _state(redis_url, prefix, clock, sync_interval=0.5)
    options = {"consecutive_failures": 1, "open_duration": 30, "clock": clock, "metrics": MetricsRegistry()}
    tripper = CircuitBreaker("shared", store=here, **options)  # type: ignore[arg-type]
    deaf = CircuitBreaker("shared", store=there, **options)  # type: ignore[arg-type]
    try:
        deaf.call(lambda: "ok")
        assert there.breaker_feed().subscriber.subscribed.wait(10)
        deaf.call(lambda: "ok")  # the copy is fresh, and no longer marked stale by the subscription
        there.breaker_feed().close()  # its subscription is gone: the trip below is never pushed to it
        with contextlib.suppress(Down):
            tripper.call(_down)
        assert deaf.call(lambda: "still admitted") == "still admitted"  # its copy is fresh for 0.5 s
        clock.advance(0.5)
        with pytest.raises(CircuitOpen) as refused:
            deaf.call(lambda: "never runs")
        assert refused.value.retry_after == pytest.approx(29.5)
    finally:
        here.close()
        there.close()


@pytest.mark.parametrize(
    ("policy", "outcome"), [("closed", "refused"), ("open", "admitted"), ("local", "admitted")]
)
def test_a_copy_meets_the_outage_policy_once_redis_is_found_gone(
    tmp_path: Path, policy: str, outcome: str
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    clock = FakeClock(start_monotonic=START, start_time=START)
    state = _state(server.url, "outage", clock, policy=policy, sync_interval=1.0)
    breaker = CircuitBreaker("outage", store=state, clock=clock, metrics=MetricsRegistry())
    try:
        breaker.call(lambda: "ok")
        server.stop()  # the subscriber may notice first (the copy is then re-read at once), or not:
        clock.advance(1.0)  # at the latest the copy is due now: the read finds Redis gone, the policy decides
        try:
            breaker.call(lambda: "ok")
            seen = "admitted"
        except CircuitOpen as exc:
            seen = "refused" if "outage policy is 'closed'" in str(exc) else str(exc)
        assert seen == outcome
        assert not state.available
        server.start()
        clock.advance(1.0)  # the reconnect backoff (0.5 s): the next call probes Redis, and reads again
        assert breaker.call(lambda: "back") == "back"
        assert state.available
        assert breaker.call(lambda: "from the copy") == "from the copy"
    finally:
        state.close()
        server.stop()
