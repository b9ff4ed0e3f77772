"""RetryBudget conformance: the memory store and the Redis store make the same decisions.

Every test runs twice, with ``store`` = memory and redis, on a FakeClock (passed into the Lua scripts
as ``now``), so windows slide without sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import RetryExhausted
from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._backoff import Backoff
from buttress.resilience._budget import RetryBudget
from buttress.resilience._redis_state import RedisState
from buttress.resilience._retry import Retry, retry_stats

MakeBudget = Callable[..., RetryBudget]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    with EventBus() as event_bus:
        yield event_bus


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[str | RedisState]:
    if request.param == "memory":
        yield "memory"
        return
    url = request.getfixturevalue("redis_url")
    namespace = f"test-budget-{uuid.uuid4().hex}"
    state = RedisState(url, prefix=namespace, clock=clock, metrics=MetricsRegistry())
    yield state
    client = state.client()  # SCAN and DEL through execute_command: on a cluster too (the layer's wrapper)
    cursor, keys = 0, []
    while True:
        cursor, found = client.execute_command("SCAN", cursor, "MATCH", f"{namespace}:*")
        keys.extend(found)
        if not int(cursor):
            break
    if keys:
        client.execute_command("DEL", *keys)
    await state.aclose()  # the async client of this test's loop, and the sync pool


@pytest.fixture
def make(store: str | RedisState, clock: FakeClock, bus: EventBus) -> MakeBudget:
    def build(**kwargs: Any) -> RetryBudget:
        kwargs.setdefault("name", "svc")
        return RetryBudget(store=store, clock=clock, metrics=MetricsRegistry(), events=bus, **kwargs)  # type: ignore[arg-type]

    return build


def spend(budget: RetryBudget, times: int) -> list[bool]:
    return [budget.try_spend() for _ in range(times)]


def test_min_retries_are_allowed_with_no_calls(make: MakeBudget) -> None:
    budget = make(ratio=0.2, min_retries=3)
    assert spend(budget, 5) == [True, True, True, False, False]
    snap = budget.snapshot()
    assert (snap.calls, snap.retries, snap.available) == (0, 3, 0)


def test_zero_min_retries_and_no_calls_allows_nothing(make: MakeBudget) -> None:
    assert spend(make(min_retries=0), 2) == [False, False]


def test_the_ratio_bounds_retries_per_call(make: MakeBudget) -> None:
    budget = make(ratio=0.2, min_retries=0)
    for _ in range(50):
        budget.record_call()
    assert spend(budget, 11) == [True] * 10 + [False]
    snap = budget.snapshot()
    assert (snap.calls, snap.retries, snap.available) == (50, 10, 0)


def test_fractions_of_a_retry_do_not_count(make: MakeBudget) -> None:
    budget = make(ratio=0.25, min_retries=0)
    for _ in range(3):
        budget.record_call()
    assert budget.snapshot().available == 0
    assert spend(budget, 1) == [False]
    budget.record_call()
    assert budget.snapshot().available == 1
    assert spend(budget, 2) == [True, False]


def test_new_calls_refill_the_budget(make: MakeBudget) -> None:
    budget = make(ratio=0.5, min_retries=1)
    assert spend(budget, 2) == [True, False]
    budget.record_call()
    assert spend(budget, 1) == [False]  # 0.5 * 1 + 1 = 1.5: still one retry in all
    budget.record_call()
    assert spend(budget, 2) == [True, False]  # 0.5 * 2 + 1 = 2


def test_the_window_slides_in_tenths(make: MakeBudget, clock: FakeClock) -> None:
    budget = make(ratio=0.1, window=10.0, min_retries=0)
    for _ in range(100):
        budget.record_call()
    assert spend(budget, 11) == [True] * 10 + [False]
    clock.advance(5.0)
    for _ in range(50):
        budget.record_call()
    assert spend(budget, 6) == [True] * 5 + [False]  # 150 calls allow 15, 10 spent
    clock.advance(4.9)
    assert budget.snapshot().calls == 150  # the first bucket is still inside the window
    clock.advance(0.1)
    snap = budget.snapshot()
    assert (snap.calls, snap.retries) == (50, 5)  # the first bucket's calls and retries left together
    assert spend(budget, 1) == [False]
    clock.advance(5.0)
    snap = budget.snapshot()
    assert (snap.calls, snap.retries, snap.available) == (0, 0, 0)


def test_min_retries_come_back_each_window(make: MakeBudget, clock: FakeClock) -> None:
    budget = make(min_retries=2, window=1.0)
    assert spend(budget, 3) == [True, True, False]
    clock.advance(1.0)
    assert spend(budget, 3) == [True, True, False]
    clock.advance(30.0)  # long idle: every bucket is stale, none is reused by mistake
    assert spend(budget, 3) == [True, True, False]


def test_snapshot_describes_the_budget(make: MakeBudget, store: str | RedisState) -> None:
    budget = make(ratio=0.5, window=2.0, min_retries=1, name="orders")
    budget.record_call()
    budget.record_call()
    budget.try_spend()
    snap = budget.snapshot()
    assert snap.to_dict() == {
        "name": "orders",
        "calls": 2,
        "retries": 1,
        "available": 1,
        "ratio": 0.5,
        "window": 2.0,
        "store": "memory" if store == "memory" else "redis",
        "degraded": False,
    }


async def test_async_methods_share_the_same_counts(make: MakeBudget) -> None:
    budget = make(ratio=0.2, min_retries=0)
    for _ in range(5):
        await budget.arecord_call()
    budget.record_call()
    assert [await budget.atry_spend() for _ in range(2)] == [True, False]
    snap = await budget.asnapshot()
    assert (snap.calls, snap.retries) == (6, 1)


def test_budget_counts_and_one_event_per_run_of_denials(
    make: MakeBudget, bus: EventBus, store: str | RedisState
) -> None:
    received: list[Event] = []
    bus.subscribe("resilience.budget.*", received.append)
    budget = make(ratio=0.0, min_retries=1, name="pay")
    budget.record_call()
    assert spend(budget, 3) == [True, False, False]
    assert bus.flush()
    assert [e.topic for e in received] == ["resilience.budget.exhausted"]
    assert received[0].payload == {
        "key": "pay",
        "calls": 1,
        "retries": 1,
        "ratio": 0.0,
        "window": 10.0,
        "min_retries": 1,
    }
    assert budget.telemetry.counts() == {"call": 1, "spent": 1, "denied": 2}


def test_an_outage_cannot_become_a_retry_storm(make: MakeBudget) -> None:
    budget = make(ratio=0.2, min_retries=10)
    retry = Retry(
        on=ConnectionError,
        attempts=3,
        backoff=Backoff.constant(0.0),
        budget=budget,
        clock=budget.clock,
        metrics=MetricsRegistry(),
        events=EventBus(),
    )

    def down() -> None:
        raise ConnectionError("upstream is down")

    with retry_stats() as stats:
        for _ in range(1000):
            with pytest.raises(RetryExhausted):
                retry.call(down)
    retries = sum(s.retries for s in stats)
    assert retries <= 0.2 * 1000 + 10
    assert retries >= 200  # the budget is used, not just refused
    assert sum(s.outcome == "budget" for s in stats) >= 1000 - retries
    snap = budget.snapshot()
    assert (snap.calls, snap.retries) == (1000, retries)


async def test_an_async_outage_cannot_become_a_retry_storm(make: MakeBudget) -> None:
    budget = make(ratio=0.1, min_retries=5)
    retry = Retry(
        on=ConnectionError,
        attempts=4,
        backoff=Backoff.constant(0.0),
        budget=budget,
        clock=budget.clock,
        metrics=MetricsRegistry(),
        events=EventBus(),
    )

    async def down() -> None:
        raise ConnectionError("upstream is down")

    async def one() -> int:
        with retry_stats() as stats, pytest.raises(RetryExhausted):
            await retry.acall(down)
        return stats[0].retries

    retries = 0
    for _ in range(10):  # 500 concurrent-ish calls, 50 in flight at a time
        retries += sum(await asyncio.gather(*(one() for _ in range(50))))
    assert 45 <= retries <= 0.1 * 500 + 5
    assert (await budget.asnapshot()).retries == retries


def test_float_clock_steps_cross_bucket_edges_like_whole_steps(make: MakeBudget, clock: FakeClock) -> None:
    budget = make(ratio=1.0, window=1.0, min_retries=0)
    budget.record_call()
    for _ in range(9):
        clock.advance(0.1)  # 0.1 is not exact in binary: 9 steps are 0.8999999999999999 s
    assert budget.snapshot().calls == 1
    clock.advance(0.1)
    assert budget.snapshot().calls == 0
