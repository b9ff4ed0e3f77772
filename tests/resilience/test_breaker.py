"""CircuitBreaker beyond the shared state machine: validation, decorator, threads, metrics, outage policy."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import BackendUnavailable, CircuitOpen, ValidationError
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._breaker import (
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    Permit,
    live_breakers,
)
from buttress.resilience._breaker_state import NOOP_PERMIT, BreakerConfig, MemoryBreakerStore
from buttress.resilience._redis_state import RedisState
from tests._redis_server import RedisServer, free_port


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("upstream failed")


def make(**options: Any) -> CircuitBreaker:
    options.setdefault("metrics", MetricsRegistry())
    options.setdefault("events", EventBus())
    return CircuitBreaker("upstream", **options)


# -- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            {"consecutive_failures": 0},
            "consecutive_failures",
            "integer >= 1 or None (rule off), got 0; e.g. 5",
        ),
        ({"consecutive_failures": True}, "consecutive_failures", "got True"),
        ({"failure_rate": 0}, "failure_rate", "ratio in (0, 1] or None (rule off), got 0; e.g. 0.5"),
        ({"failure_rate": 1.5}, "failure_rate", "got 1.5"),
        ({"slow_call_rate": "high"}, "slow_call_rate", "got 'high'; e.g. 0.8"),
        ({"consecutive_failures": None}, "consecutive_failures", "at least one trip rule"),
        ({"slow_call_duration": 0}, "slow_call_duration", "seconds > 0, got 0; e.g. 5.0"),
        ({"slow_call_duration": float("nan")}, "slow_call_duration", "got nan"),
        ({"window": 0}, "window", "integer >= 1, got 0; e.g. 100 (calls)"),
        ({"window": 2.5}, "window", "got 2.5"),
        ({"window": -1, "window_type": "time"}, "window", "e.g. 60 (seconds)"),
        ({"window_type": "sliding"}, "window_type", "'count' (last N calls) or 'time' (last N seconds)"),
        ({"minimum_calls": 0}, "minimum_calls", "e.g. 10"),
        ({"open_duration": -5}, "open_duration", "got -5; e.g. 30.0"),
        ({"open_duration": 60, "open_duration_max": 30}, "open_duration_max", ">= open_duration (60.0)"),
        ({"half_open_probes": 0}, "half_open_probes", "e.g. 1"),
        ({"probe_lease": 0}, "probe_lease", "e.g. 60.0"),
        ({"record": int}, "record", "an exception class, a tuple of them, or a function"),
        ({"ignore": (KeyError, 3)}, "ignore", "e.g. ignore=(ConnectionError, TimeoutError)"),
        ({"store": "redis"}, "store", "'memory' or a RedisState"),
    ],
)
def test_bad_options_name_the_field_and_the_fix(options: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**options)
    assert info.value.field == field
    assert message in str(info.value)


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"e\.g\. 'api\.example\.com'") as info:
        CircuitBreaker("two words")
    assert info.value.field == "name"


def test_time_window_buckets_are_about_a_second_between_10_and_120() -> None:
    assert (BreakerConfig(window=30, window_type="time").buckets, BreakerConfig().bucket_us) == (30, 1)
    assert BreakerConfig(window=2, window_type="time").bucket_us == 200_000
    assert BreakerConfig(window=600, window_type="time").bucket_us == 5_000_000
    assert BreakerConfig(window=600, window_type="time").ttl == 1260
    assert BreakerConfig().ttl == 660


def test_minimum_calls_is_capped_by_a_count_window() -> None:
    assert BreakerConfig(window=5, minimum_calls=10).minimum_calls == 5
    assert BreakerConfig(window=5, window_type="time", minimum_calls=10).minimum_calls == 10
    breaker = make(consecutive_failures=None, failure_rate=1.0, window=3, minimum_calls=50)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is BreakerState.OPEN


# -- the call protocol -------------------------------------------------------------------------------


def test_closed_acquire_is_one_shared_permit_per_closed_period() -> None:
    clock = FakeClock()
    breaker = make(consecutive_failures=1, open_duration=1, clock=clock)
    first = breaker.acquire()
    assert breaker.acquire() is first
    assert "closed" in repr(first)
    breaker.record_failure(first, Boom("x"), 0.1)
    clock.advance(1)
    probe = breaker.acquire()
    assert "probe 1" in repr(probe)
    breaker.record_success(probe, 0.1)
    assert breaker.acquire() is not first  # a new period, a new permit
    assert repr(NOOP_PERMIT) == "Permit(noop, epoch=-1)"


def test_the_memory_store_is_local_and_async_methods_are_the_sync_ones() -> None:
    breaker = make()
    assert breaker.is_local
    assert breaker.store_kind == "memory"
    assert repr(breaker) == "CircuitBreaker('upstream', state='closed', store='memory')"

    async def run() -> None:
        permit = await breaker.aacquire()
        await breaker.arecord_failure(permit, Boom("x"), 0.1)
        await breaker.arecord_success(permit, 0.1)
        await breaker.arelease(permit)

    asyncio.run(run())
    assert breaker.snapshot().calls == 2


def test_snapshot_is_a_frozen_dataclass_with_to_dict() -> None:
    breaker = make()
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    snap = breaker.snapshot()
    assert isinstance(snap, BreakerSnapshot)
    assert snap.to_dict() == {
        "name": "upstream",
        "state": "closed",
        "failure_rate": 1.0,
        "slow_call_rate": 0.0,
        "calls": 3,
        "failures": 3,
        "retry_after": None,
        "open_duration": 30.0,
        "store": "memory",
    }
    with pytest.raises(AttributeError):
        snap.calls = 0  # type: ignore[misc]


def test_decorator_keeps_signatures_of_functions_and_methods() -> None:
    breaker = make(consecutive_failures=2)

    @breaker
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @breaker
    async def aadd(a: int, *, b: int) -> int:
        return a + b

    class Client:
        def __init__(self) -> None:
            self.base = 10

        @breaker
        def get(self, path: str) -> str:
            return f"{self.base}{path}"

        @breaker
        async def aget(self, path: str) -> str:
            return f"a{self.base}{path}"

    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2) -> 'int'"
    assert str(inspect.signature(aadd)) == "(a: 'int', *, b: 'int') -> 'int'"
    assert str(inspect.signature(Client.get)) == "(self, path: 'str') -> 'str'"
    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert inspect.iscoroutinefunction(aadd)
    assert inspect.iscoroutinefunction(Client.aget)
    client = Client()
    assert add(1) == 3
    assert client.get("/x") == "10/x"
    assert asyncio.run(aadd(1, b=5)) == 6
    assert asyncio.run(client.aget("/y")) == "a10/y"
    assert breaker.telemetry.counts()["success"] == 4


async def test_async_guard_releases_a_cancelled_probe() -> None:
    clock = FakeClock()
    breaker = make(consecutive_failures=1, open_duration=1, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(1)
    entered = asyncio.Event()

    async def hold() -> None:
        async with breaker.guard():
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await entered.wait()
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with breaker.guard():
        pass
    assert breaker.state is BreakerState.CLOSED


def test_a_guard_that_never_entered_records_nothing() -> None:
    breaker = make()
    guard = breaker.guard()
    guard.__exit__(None, None, None)
    asyncio.run(guard.__aexit__(None, None, None))
    assert breaker.telemetry.counts()["success"] == 0


# -- threads -----------------------------------------------------------------------------------------


def test_no_lock_is_held_around_the_protected_call() -> None:
    breaker = make()  # the real clock: the calls really sleep
    barrier = threading.Barrier(8)

    def slow_call() -> None:
        barrier.wait()
        breaker.call(time.sleep, 0.05)

    threads = [threading.Thread(target=slow_call) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert elapsed < 0.2, f"8 concurrent 50 ms calls took {elapsed:.3f} s: something serialises them"
    assert breaker.telemetry.counts()["success"] == 8


def test_counts_stay_exact_when_threads_record_at_once() -> None:
    breaker = make(consecutive_failures=1000, window=100)
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for _ in range(500):
            if index == 0:
                breaker.record_failure(breaker.acquire(), Boom("x"), 0.001)
            else:
                breaker.record_success(breaker.acquire(), 0.001)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = breaker.telemetry.counts()
    assert (counts["success"], counts["failure"]) == (3500, 500)
    snap = breaker.snapshot()
    assert snap.calls == 100
    assert snap.state == "closed"


def test_an_acquire_that_raced_a_transition_reads_the_state_under_the_lock() -> None:
    store = MemoryBreakerStore(BreakerConfig(), time.monotonic)
    store.fast = None  # what a thread saw just before another one closed the breaker
    assert store.acquire().permit is store.closed
    store.control(BreakerState.DISABLED)
    store.fast = None
    assert store.acquire().permit is NOOP_PERMIT


def test_a_memory_store_ignores_permits_it_did_not_issue() -> None:
    config = BreakerConfig(consecutive_failures=1)
    one, other = MemoryBreakerStore(config, time.monotonic), MemoryBreakerStore(config, time.monotonic)
    foreign = Permit(0, 1, other)
    assert one.record(foreign, 1) is None
    one.release(foreign)
    assert one.state is BreakerState.CLOSED


# -- telemetry ---------------------------------------------------------------------------------------


def test_metrics_show_outcomes_and_the_state_gauge() -> None:
    metrics = MetricsRegistry()
    clock = FakeClock()
    breaker = make(consecutive_failures=2, slow_call_duration=1, clock=clock, metrics=metrics)
    breaker.call(lambda: None)
    breaker.record_success(breaker.acquire(), 1.5)
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: None)
    text = metrics.render_prometheus().decode()
    series = 'buttress_resilience_calls_total{key="upstream",outcome="%s",strategy="breaker"} %s'
    for outcome, value in (("success", "2.0"), ("failure", "2.0"), ("rejected", "1.0"), ("slow", "1.0")):
        assert series % (outcome, value) in text
    assert 'buttress_resilience_breaker_state{key="upstream",state="open"} 1.0' in text
    assert 'buttress_resilience_breaker_state{key="upstream",state="closed"} 0.0' in text
    breaker.reset()
    text = metrics.render_prometheus().decode()
    assert 'buttress_resilience_breaker_state{key="upstream",state="closed"} 1.0' in text
    assert 'buttress_resilience_breaker_state{key="upstream",state="open"} 0.0' in text


def test_every_transition_is_published_with_its_payload() -> None:
    clock = FakeClock()
    with EventBus() as bus:
        got: list[tuple[str, dict[str, Any]]] = []
        bus.subscribe("resilience.breaker.*", lambda event: got.append((event.topic, dict(event.payload))))
        breaker = make(consecutive_failures=1, open_duration=2, clock=clock, events=bus)
        with pytest.raises(Boom):
            breaker.call(boom)
        clock.advance(2)
        breaker.call(lambda: None)
        breaker.isolate()
        breaker.disable()
        breaker.reset()
        bus.flush()
    base = {"key": "upstream", "failure_rate": None, "retry_after": None}
    assert got == [
        (
            "resilience.breaker.opened",
            {**base, "from": "closed", "to": "open", "failure_rate": 1.0, "retry_after": 2.0},
        ),
        ("resilience.breaker.half_opened", {**base, "from": "open", "to": "half_open"}),
        ("resilience.breaker.closed", {**base, "from": "half_open", "to": "closed"}),
        ("resilience.breaker.forced_open", {**base, "from": "closed", "to": "forced_open"}),
        ("resilience.breaker.disabled", {**base, "from": "forced_open", "to": "disabled"}),
        ("resilience.breaker.reset", {**base, "from": "disabled", "to": "closed"}),
    ]


def test_live_breakers_lists_breakers_until_they_are_gone() -> None:
    name = f"live-{uuid.uuid4().hex}"
    breaker = CircuitBreaker(name, metrics=MetricsRegistry(), events=EventBus())
    assert breaker in live_breakers()
    names = [b.name for b in live_breakers()]
    assert names == sorted(names)
    del breaker
    gc.collect()
    assert all(b.name != name for b in live_breakers())


# -- Redis outage policy -----------------------------------------------------------------------------


@pytest.fixture
def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: connection refused


@pytest.fixture
def states() -> Iterator[list[RedisState]]:
    made: list[RedisState] = []
    yield made
    for state in made:
        state.close()


def redis_breaker(url: str, policy: str, states: list[RedisState], **options: Any) -> CircuitBreaker:
    clock = options.setdefault("clock", FakeClock())
    state = RedisState(
        url, prefix=f"t-{uuid.uuid4().hex}", policy=policy, clock=clock, metrics=MetricsRegistry()
    )  # type: ignore[arg-type]
    states.append(state)
    return make(store=state, **options)


def test_unreachable_redis_with_local_policy_uses_this_process_state(
    dead_url: str, states: list[RedisState]
) -> None:
    metrics, clock = MetricsRegistry(), FakeClock()
    breaker = redis_breaker(
        dead_url, "local", states, consecutive_failures=2, open_duration=1, metrics=metrics, clock=clock
    )
    assert not breaker.is_local
    assert breaker.call(lambda: "ok") == "ok"
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.call(lambda: "ok") == "ok"  # a success ends the streak of the local state too
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.snapshot().calls == 5
    with pytest.raises(CircuitOpen, match="is open after upstream failures"):
        breaker.call(lambda: None)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    probe = breaker.acquire()  # a probe of the local state
    with pytest.raises(CircuitOpen, match="probe slot"):
        breaker.acquire()
    breaker.release(probe)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.snapshot().store == "redis"
    assert (
        'buttress_resilience_breaker_state{key="upstream",state="half_open"} 1.0'
        in metrics.render_prometheus().decode()
    )
    with pytest.raises(BackendUnavailable, match="applied to this process's local state only"):
        breaker.reset()
    assert breaker.state is BreakerState.CLOSED  # the local state did reset
    assert repr(breaker) == "CircuitBreaker('upstream', state='closed', store='redis')"


async def test_unreachable_redis_with_local_policy_async(dead_url: str, states: list[RedisState]) -> None:
    clock = FakeClock()
    breaker = redis_breaker(dead_url, "local", states, consecutive_failures=1, open_duration=1, clock=clock)

    async def aboom() -> None:
        raise Boom("x")

    with pytest.raises(Boom):
        await breaker.acall(aboom)
    with pytest.raises(CircuitOpen):
        await breaker.acall(asyncio.sleep, 0)
    clock.advance(1)
    permit = await breaker.aacquire()
    await breaker.arelease(permit)
    assert await breaker.acall(asyncio.sleep, 0, "ok") == "ok"
    assert (await breaker.asnapshot()).state == "closed"
    with pytest.raises(BackendUnavailable):
        await breaker.aisolate()
    assert (await breaker.asnapshot()).state == "forced_open"


def test_unreachable_redis_with_open_policy_admits_and_records_nothing(
    dead_url: str, states: list[RedisState]
) -> None:
    breaker = redis_breaker(dead_url, "open", states, consecutive_failures=1)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.call(lambda: "admitted") == "admitted"
    snap = breaker.snapshot()
    assert (snap.state, snap.calls) == ("disabled", 0)


async def test_unreachable_redis_with_closed_policy_refuses(dead_url: str, states: list[RedisState]) -> None:
    breaker = redis_breaker(dead_url, "closed", states)
    with pytest.raises(CircuitOpen, match="Redis store is unreachable") as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == 1.0
    with pytest.raises(CircuitOpen):
        await breaker.acall(asyncio.sleep, 0)
    assert (await breaker.asnapshot()).state == "forced_open"
    assert breaker.snapshot().retry_after is None


def test_permits_survive_an_outage_and_redis_wins_when_it_returns(
    tmp_path: Path, states: list[RedisState]
) -> None:
    clock = FakeClock()
    with RedisServer(tmp_path) as server:
        breaker = redis_breaker(server.url, "local", states, consecutive_failures=1, clock=clock)
        before = breaker.acquire()
        server.stop()
        breaker.record_failure(before, Boom("during the outage"), 0.1)  # cannot reach Redis: dropped
        local = breaker.acquire()  # from the in-memory fallback
        assert breaker.state is BreakerState.CLOSED
        server.start()
        clock.advance(1)  # past the store's reconnect backoff
        breaker.record_failure(local, Boom("recorded where it was issued"), 0.1)
        assert breaker.state is BreakerState.CLOSED  # Redis is back and its state is authoritative
        assert breaker._store.fallback.state is BreakerState.OPEN  # type: ignore[union-attr]
        breaker.release(local)
        asyncio.run(breaker.arelease(local))
        assert breaker.call(lambda: "via redis") == "via redis"
