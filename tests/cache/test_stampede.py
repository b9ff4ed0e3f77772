"""Single-flight: 1,000 concurrent misses on one key run the function once, for threads and for tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from buttress.cache import Cache
from buttress.cache._flight import AsyncSingleFlight, SingleFlight

CALLERS = 1000


def test_one_thousand_threads_missing_together_call_once() -> None:
    cache = Cache()
    calls: list[int] = []
    release = threading.Event()
    started = threading.Barrier(CALLERS + 1)

    @cache.cached(ttl=60)
    def slow(key: str) -> str:
        calls.append(1)
        release.wait(10)
        return key.upper()

    results: list[str] = []

    def caller() -> None:
        started.wait(10)
        results.append(slow("a"))

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    started.wait(10)
    while len(cache._shared.flight) == 0:  # the leader has entered the function
        release.wait(0.001)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert results == ["A"] * CALLERS


async def test_one_thousand_tasks_missing_together_call_once() -> None:
    cache = Cache()
    calls: list[int] = []
    release = asyncio.Event()

    @cache.cached(ttl=60)
    async def slow(key: str) -> str:
        calls.append(1)
        await release.wait()
        return key.upper()

    tasks = [asyncio.create_task(slow("b")) for _ in range(CALLERS)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == ["B"] * CALLERS
    assert len(calls) == 1


def test_waiters_get_the_leaders_error_and_the_next_call_retries() -> None:
    flight = SingleFlight()
    entered, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def fail() -> int:
        entered.set()
        release.wait(5)
        raise ValueError("no")

    def call() -> None:
        try:
            flight.run("k", fail)
        except ValueError as exc:
            errors.append(exc)

    leader = threading.Thread(target=call)
    leader.start()
    entered.wait(5)
    followers = [threading.Thread(target=call) for _ in range(5)]
    for thread in followers:
        thread.start()
    release.set()
    for thread in [leader, *followers]:
        thread.join(5)
    assert len(errors) == 6
    assert flight.run("k", lambda: 3) == 3
    assert len(flight) == 0


async def test_a_cancelled_leader_hands_over_instead_of_cancelling_waiters() -> None:
    flight = AsyncSingleFlight()
    started = asyncio.Event()
    calls: list[int] = []

    async def work() -> int:
        calls.append(1)
        started.set()
        await asyncio.sleep(0 if len(calls) > 1 else 10)
        return len(calls)

    leader = asyncio.create_task(flight.run("k", work))
    await started.wait()
    follower = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await follower == 2  # the follower became the leader and ran the work itself
    assert flight.in_flight() == 0


async def test_async_waiters_share_the_error() -> None:
    flight = AsyncSingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0)
        raise KeyError("gone")

    results = await asyncio.gather(*(flight.run("k", fail) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(result, KeyError) for result in results)
