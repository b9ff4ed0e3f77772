"""One suite for the rate limiter's stores: memory and Redis must decide identically.

Each test runs on a FakeClock; on Redis the fake time goes to the Lua script as ``now``, so both stores
see the same time. Redis keys live under a fresh namespace per test (never a FLUSHDB: other suites share
the database).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from buttress.clock import FakeClock
from buttress.errors import RateLimited
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.rate import Rate
from buttress.resilience._limiter import AVAILABLE_METRIC, RateLimiter
from buttress.resilience._redis_state import RedisState


class Limiters:
    """Builds limiters on one store kind and closes what it opened."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind = kind
        self.url = url
        self.states: list[RedisState] = []
        self.registry = MetricsRegistry()

    def __call__(self, rate: str | Rate = "10/s", *, clock: FakeClock, **options: object) -> RateLimiter:
        store: str | RedisState = "memory"
        if self.kind == "redis":
            assert self.url is not None
            store = RedisState(
                self.url, prefix=f"test-limiter-{uuid.uuid4().hex}", clock=clock, metrics=self.registry
            )
            self.states.append(store)
        return RateLimiter(
            rate,
            store=store,  # type: ignore[arg-type]
            clock=clock,
            metrics=self.registry,
            events=EventBus(),
            **options,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        for state in self.states:
            state.close()

    async def aclose(self) -> None:
        for state in self.states:
            await state.aclose()


def _limiters(request: pytest.FixtureRequest) -> Limiters:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return Limiters(request.param, url)


@pytest.fixture(params=["memory", "redis"])
def limiters(request: pytest.FixtureRequest) -> Iterator[Limiters]:
    factory = _limiters(request)
    yield factory
    factory.close()


@pytest.fixture(params=["memory", "redis"])
async def alimiters(request: pytest.FixtureRequest) -> AsyncIterator[Limiters]:
    factory = _limiters(request)
    yield factory
    await factory.aclose()


# -- deciding --------------------------------------------------------------------------------------


def test_burst_at_once_then_one_per_interval(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("10/s", burst=3, clock=clock)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    for _ in range(5):
        clock.advance(0.05)
        assert not limiter.try_acquire()
        clock.advance(0.05)
        assert limiter.try_acquire()
        assert not limiter.try_acquire()
    clock.advance(10)  # a long pause refills only up to the burst
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert limiter.telemetry.counts() == {"admitted": 11, "rejected": 12, "waited": 0}


def test_an_interval_that_is_not_a_round_number(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("3/s", burst=2, clock=clock)
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    for _ in range(30):
        clock.advance(1 / 3)
        assert limiter.try_acquire()
        assert not limiter.try_acquire()


def test_cost_takes_several_tokens(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("10/s", burst=5, clock=clock)
    assert limiter.try_acquire(cost=3)
    assert not limiter.try_acquire(cost=3)  # 2 left
    assert limiter.try_acquire(cost=2)
    clock.advance(0.2)
    assert not limiter.try_acquire(cost=3)
    clock.advance(0.1)
    assert limiter.try_acquire(cost=3)
    assert limiter.snapshot().available == pytest.approx(0)


def test_try_acquire_never_waits(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("1/minute", clock=clock)
    assert limiter.try_acquire()
    assert [limiter.try_acquire() for _ in range(5)] == [False] * 5
    assert clock.sleeps == []
    assert clock.monotonic() == 1000.0


def test_acquire_waits_exactly_the_computed_time(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("10/s", burst=2, clock=clock)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.1, abs=1e-6)
    assert limiter.acquire(cost=2) == pytest.approx(0.2, abs=1e-6)
    clock.advance(0.05)
    assert limiter.acquire() == pytest.approx(0.05, abs=1e-6)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.05], abs=1e-6)
    assert limiter.telemetry.counts() == {"admitted": 2, "rejected": 0, "waited": 3}
    assert limiter.snapshot().waited == 3


def test_acquire_refuses_a_wait_beyond_the_timeout_without_taking(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("10/s", burst=2, max_wait=0.15, name="api", clock=clock)
    limiter.acquire(cost=2)
    with pytest.raises(RateLimited) as info:
        limiter.acquire(cost=2, timeout=0.19)
    assert info.value.retry_after == pytest.approx(0.2, abs=1e-6)
    assert "key 'default' at 10/1s with burst 2" in str(info.value)
    with pytest.raises(RateLimited) as info:
        limiter.acquire("default", 1, timeout=0.05)
    assert info.value.retry_after == pytest.approx(0.1, abs=1e-6)
    assert clock.sleeps == []
    assert limiter.snapshot().rejected == 2
    # nothing was taken: the same request with enough time waits the same 0.2 s
    assert limiter.acquire(cost=2, timeout=0.2) == pytest.approx(0.2, abs=1e-6)
    # max_wait is the default timeout
    with pytest.raises(RateLimited, match=r"longer than the timeout of 0\.15 s") as info:
        limiter.acquire(cost=2)
    assert info.value.retry_after == pytest.approx(0.2, abs=1e-6)


def test_keys_are_independent(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("1/s", burst=2, clock=clock)
    assert limiter.try_acquire("a", cost=2)
    assert not limiter.try_acquire("a")
    assert limiter.try_acquire("b")
    assert limiter.try_acquire("b")
    assert not limiter.try_acquire("b")
    assert limiter.snapshot("a").available == 0
    assert limiter.snapshot("c").available == 2
    assert sorted(limiter.keys()) == ["a", "b"]


def test_reset_refills_a_bucket_and_forgets_its_counts(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("1/minute", burst=2, clock=clock)
    limiter.try_acquire("a", cost=2)
    limiter.try_acquire("b", cost=2)
    assert not limiter.try_acquire("a")
    limiter.reset("a")
    snapshot = limiter.snapshot("a")
    assert (snapshot.available, snapshot.rejected) == (2, 0)
    assert limiter.try_acquire("a", cost=2)
    assert not limiter.try_acquire("b")  # untouched


def test_snapshot_shows_available_tokens(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("4/s", burst=4, name="snap", clock=clock)
    assert limiter.snapshot().available == 4
    limiter.try_acquire(cost=3)
    assert limiter.snapshot().available == pytest.approx(1)
    clock.advance(0.125)
    assert limiter.snapshot().available == pytest.approx(1.5)
    assert limiter.acquire(cost=4) == pytest.approx(0.625, abs=1e-6)
    assert limiter.snapshot().available == 0
    clock.advance(0.1)
    assert limiter.snapshot().available == pytest.approx(0.4)
    clock.advance(60)
    snapshot = limiter.snapshot()
    assert snapshot.available == 4
    assert (snapshot.name, snapshot.rate, snapshot.burst, snapshot.store) == (
        "snap",
        "4/1s",
        4,
        limiters.kind,
    )


def test_waiters_queue_in_order(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("10/s", burst=1, clock=clock)
    waits = [limiter.acquire("q") for _ in range(4)]
    assert waits == pytest.approx([0, 0.1, 0.1, 0.1], abs=1e-6)  # auto_advance: each slept its turn
    assert clock.monotonic() == pytest.approx(1000.3)


def test_available_tokens_gauge(limiters: Limiters) -> None:
    clock = FakeClock()
    limiter = limiters("10/s", burst=3, name="gauge", clock=clock)
    limiter.try_acquire("a", cost=2)
    limiter.try_acquire("b")
    family = limiters.registry.snapshot()[AVAILABLE_METRIC]
    values = {s["labels"]["key"]: s["value"] for s in family["series"]}
    assert values["gauge:a"] == pytest.approx(1)
    assert values["gauge:b"] == pytest.approx(2)


class Interrupted(Exception):
    pass


class InterruptedClock(FakeClock):
    """A FakeClock whose sleep is interrupted, as by a signal handler that raises."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        raise Interrupted


def test_interrupted_wait_gives_the_reservation_back(limiters: Limiters) -> None:
    clock = InterruptedClock()
    limiter = limiters("10/s", burst=1, clock=clock)
    limiter.acquire()
    with pytest.raises(Interrupted):
        limiter.acquire()
    assert clock.sleeps == pytest.approx([0.1], abs=1e-6)
    clock.advance(0.1)
    assert limiter.try_acquire()  # the interrupted call's slot was returned
    assert not limiter.try_acquire()


# -- async -----------------------------------------------------------------------------------------


async def test_async_api_decides_like_the_sync_one(alimiters: Limiters) -> None:
    clock = FakeClock()
    limiter = alimiters("10/s", burst=2, clock=clock)
    assert await limiter.atry_acquire("k")
    assert await limiter.aacquire("k") == 0.0
    assert not await limiter.atry_acquire("k")
    assert not await limiter.atry_acquire("k", cost=2)
    assert await limiter.aacquire("k") == pytest.approx(0.1, abs=1e-6)
    with pytest.raises(RateLimited) as info:
        await limiter.aacquire("k", cost=2, timeout=0.1)
    assert info.value.retry_after == pytest.approx(0.2, abs=1e-6)
    snapshot = await limiter.asnapshot("k")
    assert (snapshot.available, snapshot.rejected, snapshot.waited) == (0, 3, 1)
    await limiter.areset("k")
    assert (await limiter.asnapshot("k")).available == 2
    assert clock.sleeps == pytest.approx([0.1], abs=1e-6)


async def _until(condition: object, what: str) -> None:
    """Let other tasks (and Redis replies) run until ``condition()`` holds; a 5 s guard, no sleeping."""
    deadline = time.monotonic() + 5
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0)


async def test_async_waiters_are_spaced_in_order_and_sleep_once(alimiters: Limiters) -> None:
    clock = FakeClock(auto_advance=False)
    limiter = alimiters("10/s", burst=1, clock=clock)
    finished: list[float] = []

    async def waiter() -> None:
        finished.append(await limiter.aacquire(timeout=5))

    tasks = [asyncio.create_task(waiter()) for _ in range(20)]
    await _until(lambda: len(finished) == 1 and clock.sleepers == 19, "19 parked waiters")
    assert finished == [0.0]
    for step in range(1, 20):
        clock.advance(0.1 + 1e-9)  # a hair over, so float sums of 0.1 never leave a deadline just ahead
        await _until(lambda step=step: len(finished) == step + 1, f"waiter {step}")  # type: ignore[misc]
        assert clock.sleepers == 19 - step  # exactly one woke per interval
    await asyncio.gather(*tasks)
    assert finished == pytest.approx([0.1 * i for i in range(20)], abs=1e-6)
    # one sleep per waiter, each exactly its reserved wait: nobody polled
    assert sorted(clock.sleeps) == pytest.approx([0.1 * i for i in range(1, 20)], abs=1e-6)
    assert limiter.telemetry.counts() == {"admitted": 1, "rejected": 0, "waited": 19}


async def test_cancelled_last_waiter_gives_its_slot_back(alimiters: Limiters) -> None:
    clock = FakeClock(auto_advance=False)
    limiter = alimiters("10/s", burst=1, clock=clock)
    assert await limiter.aacquire() == 0.0
    kept = asyncio.create_task(limiter.aacquire())
    await _until(lambda: clock.sleepers == 1, "the first waiter")
    cancelled = asyncio.create_task(limiter.aacquire())
    await _until(lambda: clock.sleepers == 2, "the second waiter")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    clock.advance(0.1)
    assert await kept == pytest.approx(0.1, abs=1e-6)
    clock.advance(0.1)
    assert await limiter.atry_acquire()  # the cancelled slot (at 0.2) is free again
    assert not await limiter.atry_acquire()
