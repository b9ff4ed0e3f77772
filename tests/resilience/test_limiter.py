"""RateLimiter in memory: validation, decorator, waiting, eviction, threads, metrics and events.

Behaviour shared with the Redis store (burst, spacing, cost, waits, keys, reset, snapshot, async waiters)
is in tests/conformance/test_limiter_conformance.py.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading

import pytest

from buttress.clock import FakeClock
from buttress.errors import RateLimited, ValidationError
from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.rate import Rate
from buttress.resilience._limiter import (
    AVAILABLE_METRIC,
    EXPORTED_KEYS,
    LimiterSnapshot,
    RateLimiter,
    live_limiters,
)


def make(rate: str | Rate = "10/s", *, clock: FakeClock | None = None, **options: object) -> RateLimiter:
    return RateLimiter(
        rate,
        clock=clock if clock is not None else FakeClock(),
        metrics=MetricsRegistry(),
        events=EventBus(),
        **options,  # type: ignore[arg-type]
    )


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"burst": 0}, "burst", "burst must be an integer >= 1, got 0; e.g. burst=10"),
        ({"burst": 2.5}, "burst", "burst must be an integer >= 1, got 2.5"),
        ({"burst": True}, "burst", "burst must be an integer >= 1, got True"),
        ({"max_wait": -1}, "max_wait", "max_wait must be a finite number of seconds >= 0, got -1; e.g."),
        ({"max_wait": float("nan")}, "max_wait", "max_wait must be a finite number of seconds >= 0"),
        ({"max_wait": float("inf")}, "max_wait", "max_wait must be a finite number of seconds >= 0"),
        ({"max_wait": "1"}, "max_wait", "max_wait must be a finite number of seconds >= 0"),
        ({"name": "two words"}, "name", "name must be a non-empty string"),
        ({"name": ""}, "name", "name must be a non-empty string"),
        ({"max_keys": 0}, "max_keys", "max_keys must be an integer >= 1, got 0; e.g. max_keys=10_000"),
        (
            {"store": "redis"},
            "store",
            "store must be 'memory' or a RedisState (shorthands), or a LimiterStore, got 'redis'; e.g.",
        ),
    ],
)
def test_constructor_validation(options: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**options)
    assert info.value.field == field
    assert message in str(info.value)


def test_rate_is_parsed_from_text_or_taken_as_given() -> None:
    assert make("60/minute").rate == Rate(60, 60.0)
    assert make(Rate(5, 2.0)).rate == Rate(5, 2.0)
    with pytest.raises(ValidationError, match="rate must look like") as info:
        make("lots")
    assert info.value.field == "rate"


@pytest.mark.parametrize("cost", [0, -1, 1.5, False, "2"])
def test_cost_must_be_a_positive_integer(cost: object) -> None:
    limiter = make(burst=5)
    for method in (limiter.try_acquire, limiter.acquire):
        with pytest.raises(ValidationError, match=r"cost must be an integer >= 1 \(tokens to take\)") as info:
            method("default", cost)  # type: ignore[arg-type]
        assert info.value.field == "cost"


def test_cost_above_burst_can_never_pass() -> None:
    limiter = make(burst=3)
    with pytest.raises(
        ValidationError, match=r"cost 4 is more than burst 3: .*use cost <= 3 or a limiter with burst >= 4"
    ):
        limiter.try_acquire(cost=4)
    with pytest.raises(ValidationError, match="cost 4 is more than burst 3") as info:
        limiter.acquire(cost=4)
    assert info.value.field == "cost"
    assert limiter.snapshot().available == 3  # nothing taken


async def test_async_methods_validate_like_sync_ones() -> None:
    limiter = make(burst=2)
    with pytest.raises(ValidationError, match="cost 3 is more than burst 2"):
        await limiter.aacquire(cost=3)
    with pytest.raises(ValidationError, match="cost 3 is more than burst 2"):
        await limiter.atry_acquire(cost=3)
    with pytest.raises(ValidationError, match="timeout must be a finite number of seconds >= 0"):
        await limiter.aacquire(timeout=-1)
    with pytest.raises(ValidationError, match="key must be a non-empty string"):
        await limiter.asnapshot("a b")
    with pytest.raises(ValidationError, match="key must be a non-empty string"):
        await limiter.areset("")


@pytest.mark.parametrize("timeout", [-0.5, float("nan"), float("inf"), "1"])
def test_timeout_must_be_finite_and_not_negative(timeout: object) -> None:
    with pytest.raises(
        ValidationError, match=r"timeout must be a finite number of seconds >= 0, .*e\.g\. timeout=5.0"
    ) as info:
        make().acquire(timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"


@pytest.mark.parametrize("key", ["", "two words", "x" * 301, 42, None])
def test_keys_are_validated(key: object) -> None:
    limiter = make()
    with pytest.raises(
        ValidationError, match="key must be a non-empty string of at most 300 characters"
    ) as info:
        limiter.try_acquire(key)  # type: ignore[arg-type]
    assert info.value.field == "key"
    for method in (limiter.snapshot, limiter.reset):
        with pytest.raises(ValidationError, match="key must be"):
            method(key)  # type: ignore[arg-type]
    assert limiter.keys() == []


# -- acquiring -------------------------------------------------------------------------------------


def test_acquire_returns_the_wait_and_sleeps_it_once() -> None:
    clock = FakeClock()
    limiter = make("10/s", burst=2, clock=clock)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 0.0
    assert clock.sleeps == []
    assert limiter.acquire() == pytest.approx(0.1)
    assert limiter.acquire(cost=2) == pytest.approx(0.2)
    assert clock.sleeps == pytest.approx([0.1, 0.2])
    assert limiter.telemetry.counts() == {"admitted": 2, "rejected": 0, "waited": 2}


def test_acquire_with_zero_timeout_never_waits() -> None:
    clock = FakeClock()
    limiter = make("10/s", clock=clock)
    limiter.acquire(timeout=0)
    with pytest.raises(RateLimited, match=r"retry after 0\.100 s") as info:
        limiter.acquire(timeout=0)
    assert "timeout" not in str(info.value)
    assert clock.sleeps == []


def test_rejection_message_names_limiter_key_rate_burst_and_timeout() -> None:
    limiter = make("10/s", burst=2, max_wait=0.05, name="api")
    limiter.acquire("user-1", cost=2)
    with pytest.raises(RateLimited) as info:
        limiter.acquire("user-1")
    error = info.value
    assert str(error) == (
        "rate limiter 'api' has no 1 token for key 'user-1' at 10/1s with burst 2: retry after 0.100 s, "
        "longer than the timeout of 0.05 s"
    )
    assert error.retry_after == pytest.approx(0.1)
    assert error.status == 429
    assert error.context["key"] == "user-1"
    assert error.context["rate"] == "10/1s"
    assert error.context["burst"] == 2
    with pytest.raises(RateLimited, match="has no 2 tokens for key 'user-1'"):
        limiter.acquire("user-1", cost=2)


def test_call_and_decorator_acquire_before_calling() -> None:
    limiter = make("10/s", burst=2, max_wait=0)
    calls: list[int] = []

    @limiter
    def work(x: int, *, y: int = 1) -> int:
        """Work."""
        calls.append(x)
        return x + y

    assert work.__name__ == "work"
    assert work.__doc__ == "Work."
    assert inspect.signature(work) == inspect.signature(work.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(work).parameters) == ["x", "y"]
    assert work(1, y=2) == 3
    assert limiter.call(work.__wrapped__, 5) == 6  # type: ignore[attr-defined]
    with pytest.raises(RateLimited):
        work(2)
    assert calls == [1, 5]


async def test_async_decorator_and_acall() -> None:
    clock = FakeClock()
    limiter = make("10/s", burst=1, clock=clock)

    @limiter
    async def fetch(x: int) -> int:
        return x * 2

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch(2) == 4
    assert await fetch(3) == 6  # waited for the second token
    assert clock.sleeps == pytest.approx([0.1])

    async def double(x: int) -> int:
        return x * 2

    assert await limiter.acall(double, 5) == 10
    assert clock.sleeps == pytest.approx([0.1, 0.1])


def test_decorated_method_binds_self() -> None:
    limiter = make("10/s", burst=5)

    class Client:
        def __init__(self) -> None:
            self.sent = 0

        @limiter
        def send(self, n: int) -> int:
            self.sent += n
            return self.sent

    client = Client()
    assert client.send(2) == 2
    assert client.send(3) == 5
    assert limiter.snapshot().available == 3


def test_decorator_needs_a_function() -> None:
    with pytest.raises(ValidationError, match="a resilience decorator needs a function"):
        make()(42)  # type: ignore[arg-type]


async def test_async_try_acquire_and_snapshot_on_memory() -> None:
    limiter = make("10/s", burst=1)
    assert await limiter.atry_acquire("k")
    assert not await limiter.atry_acquire("k")
    snap = await limiter.asnapshot("k")
    assert snap.available == 0
    assert snap.rejected == 1
    await limiter.areset("k")
    assert (await limiter.asnapshot("k")).rejected == 0
    assert await limiter.atry_acquire("k")


# -- interrupted and cancelled waits give their slot back ------------------------------------------


async def test_cancelled_waiter_gives_back_only_the_last_reservation() -> None:
    clock = FakeClock(auto_advance=False)
    limiter = make("10/s", burst=1, clock=clock)
    await limiter.aacquire()
    first = asyncio.create_task(limiter.aacquire())
    second = asyncio.create_task(limiter.aacquire())
    while clock.sleepers < 2:
        await asyncio.sleep(0)
    first.cancel()  # not the last reservation: giving it back would move the second one's slot
    with pytest.raises(asyncio.CancelledError):
        await first
    clock.advance(0.2)
    assert await second == pytest.approx(0.2)
    assert not limiter.try_acquire()  # the first slot (at 0.1) stayed taken

    third = asyncio.create_task(limiter.aacquire())
    while clock.sleepers < 1:
        await asyncio.sleep(0)
    third.cancel()  # the last reservation: returned
    with pytest.raises(asyncio.CancelledError):
        await third
    clock.advance(0.1)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


# -- memory bound ----------------------------------------------------------------------------------


def test_full_buckets_are_dropped_first_when_keys_run_out() -> None:
    clock = FakeClock()
    limiter = make("1/s", burst=2, max_keys=4, clock=clock)
    for key in ("a", "b", "c", "d"):
        limiter.try_acquire(key)
    limiter.try_acquire("d")  # d is empty, a-c hold one token each
    clock.advance(1.0)  # a, b, c are full again; d holds one
    limiter.try_acquire("e")
    assert sorted(limiter.keys()) == ["d", "e"]
    assert limiter.snapshot("d").available == 1  # kept, with its state


def test_buckets_closest_to_full_go_when_none_is_full() -> None:
    clock = FakeClock()
    limiter = make("1/s", burst=100, max_keys=20, clock=clock)
    for i in range(20):
        limiter.try_acquire(f"k{i}", cost=i + 1)  # k0 holds the most tokens, k19 the fewest
    limiter.try_acquire("new")
    # no bucket is full: the two closest to full (k0, k1) go, down to 90 % of max_keys
    assert sorted(limiter.keys()) == sorted([f"k{i}" for i in range(2, 20)] + ["new"])
    assert limiter.snapshot("k19").available == 80


def test_per_key_counts_stay_bounded() -> None:
    limiter = make("1/s", burst=1, max_keys=3)
    for i in range(5):
        key = f"k{i}"
        limiter.try_acquire(key)
        limiter.try_acquire(key)
    assert [limiter.snapshot(f"k{i}").rejected for i in range(5)] == [0, 0, 1, 1, 1]
    assert limiter.telemetry.counts()["rejected"] == 5


# -- threads ---------------------------------------------------------------------------------------


def test_threads_admit_exactly_the_burst_on_a_frozen_clock() -> None:
    limiter = make("100/s", burst=50, clock=FakeClock())
    start = threading.Barrier(8)
    admitted = [0] * 8

    def worker(index: int) -> None:
        start.wait()
        admitted[index] = sum(limiter.try_acquire() for _ in range(200))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 50
    assert limiter.telemetry.counts() == {"admitted": 50, "rejected": 1550, "waited": 0}
    assert limiter.snapshot().rejected == 1550


def test_threads_on_a_moving_clock_admit_burst_plus_refill() -> None:
    clock = FakeClock()
    limiter = make("100/s", burst=10, clock=clock)
    stop = threading.Event()
    admitted = [0] * 4

    def worker(index: int) -> None:
        while not stop.is_set():
            admitted[index] += limiter.try_acquire()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(50):  # 50 steps of one interval: 50 more tokens
        clock.advance(0.01)
        while limiter.snapshot().available >= 1:  # wait until the workers took the new token
            pass
    stop.set()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 60


# -- snapshot, keys, registry ----------------------------------------------------------------------


def test_snapshot_and_to_dict() -> None:
    clock = FakeClock()
    limiter = make("60/minute", burst=5, name="search", clock=clock, max_wait=0)
    limiter.acquire("u1", cost=5)
    with pytest.raises(RateLimited):
        limiter.acquire("u1")
    clock.advance(1.5)
    snap = limiter.snapshot("u1")
    assert snap == LimiterSnapshot(
        name="search",
        key="u1",
        rate="60/60s",
        burst=5,
        available=pytest.approx(1.5),
        rejected=1,
        waited=0,
        store="memory",
    )
    assert snap.to_dict() == {
        "name": "search",
        "key": "u1",
        "rate": "60/60s",
        "burst": 5,
        "available": pytest.approx(1.5),
        "rejected": 1,
        "waited": 0,
        "store": "memory",
    }
    assert limiter.snapshot("never-used").available == 5
    assert limiter.keys() == ["u1"]


def test_repr_and_is_local() -> None:
    limiter = make("10/s", burst=3, name="api")
    assert repr(limiter) == "RateLimiter('10/1s', burst=3, name='api', store='memory')"
    assert limiter.is_local


def test_live_limiters_lists_limiters_by_name_while_they_live() -> None:
    b = make(name="live-b")
    a = make(name="live-a")
    names = [limiter.name for limiter in live_limiters()]
    assert names.index("live-a") < names.index("live-b")
    del a
    gc.collect()
    assert "live-a" not in [limiter.name for limiter in live_limiters()]
    assert b in live_limiters()


def test_system_clock_limiter_works_in_real_time() -> None:
    limiter = RateLimiter("1000/s", burst=3, metrics=MetricsRegistry(), events=EventBus())
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, True]
    waited = limiter.acquire(timeout=1.0)
    assert 0 <= waited <= 0.0011


# -- metrics and events ----------------------------------------------------------------------------


def _series(registry: MetricsRegistry, name: str) -> dict[tuple[tuple[str, str], ...], object]:
    family = registry.snapshot()[name]
    return {tuple(sorted(s["labels"].items())): s.get("value", s.get("count")) for s in family["series"]}


def test_metrics_count_outcomes_waits_and_available_tokens() -> None:
    clock = FakeClock()
    registry = MetricsRegistry()
    limiter = RateLimiter("10/s", burst=2, name="m", clock=clock, metrics=registry, events=EventBus())
    limiter.try_acquire("a")
    limiter.try_acquire("a")
    limiter.try_acquire("a")
    limiter.acquire("b", cost=2)
    limiter.acquire("b")
    calls = _series(registry, "buttress_resilience_calls_total")
    assert calls[(("key", "m"), ("outcome", "admitted"), ("strategy", "limiter"))] == 3
    assert calls[(("key", "m"), ("outcome", "rejected"), ("strategy", "limiter"))] == 1
    assert calls[(("key", "m"), ("outcome", "waited"), ("strategy", "limiter"))] == 1
    waits = _series(registry, "buttress_resilience_wait_seconds")
    assert waits[(("key", "m"), ("strategy", "limiter"))] == 1
    tokens = _series(registry, AVAILABLE_METRIC)
    assert tokens[(("key", "m:a"),)] == pytest.approx(1.0)  # refilled by b's 0.1 s wait
    assert tokens[(("key", "m:b"),)] == pytest.approx(0.0)
    limiter.reset("b")
    assert _series(registry, AVAILABLE_METRIC)[(("key", "m:b"),)] == 2
    text = registry.render_prometheus().decode()
    assert 'buttress_resilience_limiter_available_tokens{key="m:b"} 2.0' in text


def test_the_default_keys_tokens_are_labelled_by_the_name_alone() -> None:
    registry = MetricsRegistry()
    limiter = RateLimiter("10/s", burst=3, name="http:api.example.com", clock=FakeClock(), metrics=registry)
    limiter.try_acquire()
    limiter.try_acquire("other")
    tokens = _series(registry, AVAILABLE_METRIC)
    assert tokens == {(("key", "http:api.example.com"),): 2.0, (("key", "http:api.example.com:other"),): 2.0}


def test_available_tokens_exported_for_a_bounded_number_of_keys() -> None:
    registry = MetricsRegistry()
    limiter = RateLimiter("10/s", clock=FakeClock(), metrics=registry, events=EventBus(), name="many")
    assert AVAILABLE_METRIC not in registry.snapshot()  # no keys yet: no series
    for i in range(EXPORTED_KEYS + 20):
        limiter.try_acquire(f"k{i}")
    series = _series(registry, AVAILABLE_METRIC)
    assert len(series) == EXPORTED_KEYS
    assert (("key", "many:k0"),) in series
    assert (("key", f"many:k{EXPORTED_KEYS}"),) not in series
    limiter.try_acquire("later")
    assert len(_series(registry, AVAILABLE_METRIC)) == EXPORTED_KEYS


def test_rejections_publish_an_event() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("resilience.limiter.*", seen.append)
    limiter = RateLimiter(
        "10/s", burst=1, name="ev", clock=FakeClock(), metrics=MetricsRegistry(), events=bus
    )
    limiter.try_acquire("u")
    limiter.try_acquire("u")
    with pytest.raises(RateLimited):
        limiter.acquire("u", timeout=0.05)
    assert bus.flush(5)
    assert [event.topic for event in seen] == ["resilience.limiter.rejected"] * 2
    assert dict(seen[0].payload) == {"key": "ev", "bucket": "u", "cost": 1, "retry_after": pytest.approx(0.1)}
    bus.close()
