"""Stale-while-revalidate: the stale value is served while exactly one background refresh runs."""

from __future__ import annotations

import asyncio
import threading

from buttress.cache import Cache
from buttress.clock import FakeClock


def test_stale_value_served_while_one_refresh_runs() -> None:
    clock = FakeClock()
    cache = Cache(clock=clock)
    version = [0]
    gate = threading.Event()
    refreshes: list[int] = []

    @cache.cached(ttl=10, stale_ttl=30)
    def price(item: str) -> int:
        if version[0]:
            refreshes.append(1)
            gate.wait(5)
        version[0] += 1
        return version[0]

    assert price("x") == 1
    clock.advance(15)  # past the TTL, inside the stale window
    served = [price("x") for _ in range(50)]
    assert served == [1] * 50  # every caller got the stale value at once
    gate.set()
    assert cache.drain(5)
    assert refreshes == [1]  # exactly one refresh for 50 stale reads
    assert price("x") == 2
    stats = cache.stats_recorder.namespace("default")
    assert stats.stale_hits.value == 50


def test_past_the_stale_window_the_caller_computes() -> None:
    clock = FakeClock()
    cache = Cache(clock=clock)
    calls: list[int] = []

    @cache.cached(ttl=10, stale_ttl=5)
    def value() -> int:
        calls.append(1)
        return len(calls)

    assert value() == 1
    clock.advance(16)
    assert value() == 2  # the entry left the backend at ttl + stale_ttl
    assert cache.drain(1)


def test_without_stale_ttl_an_expired_entry_is_a_miss() -> None:
    clock = FakeClock()
    cache = Cache(clock=clock)
    cache.set("k", "old", ttl=10)
    clock.advance(11)
    assert cache.get_or_set("k", lambda: "new") == "new"


def test_a_failing_refresh_keeps_serving_stale() -> None:
    clock = FakeClock()
    cache = Cache(clock=clock)
    fail = [False]

    def load() -> str:
        if fail[0]:
            raise RuntimeError("upstream down")
        return "v1"

    assert cache.get_or_set("k", load, ttl=10, stale_ttl=60) == "v1"
    fail[0] = True
    clock.advance(11)
    assert cache.get_or_set("k", load, ttl=10, stale_ttl=60) == "v1"
    assert cache.drain(5)
    assert cache.get_or_set("k", load, ttl=10, stale_ttl=60) == "v1"
    assert cache.drain(5)


async def test_async_stale_value_and_one_refresh_task() -> None:
    clock = FakeClock()
    cache = Cache(clock=clock)
    calls: list[int] = []

    @cache.cached(ttl=10, stale_ttl=30)
    async def rate(code: str) -> int:
        calls.append(1)
        await asyncio.sleep(0)
        return len(calls)

    assert await rate("EUR") == 1
    clock.advance(12)
    assert await asyncio.gather(*(rate("EUR") for _ in range(20))) == [1] * 20
    await cache.adrain()
    assert calls == [1, 1]
    assert await rate("EUR") == 2
