"""retry_stats(): per-call statistics that concurrent threads and tasks never share (tenacity #701)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from buttress.clock import FakeClock
from buttress.errors import DeadlineExceeded, RetryExhausted
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._backoff import Backoff
from buttress.resilience._retry import Retry, RetryStats, retry_stats
from tests.resilience.test_retry import CountingBudget, Flaky


def build(clock: FakeClock, **kwargs: object) -> Retry:
    kwargs.setdefault("backoff", Backoff.constant(0.5))
    return Retry(on=ConnectionError, clock=clock, metrics=MetricsRegistry(), events=EventBus(), **kwargs)  # type: ignore[arg-type]


def test_a_success_first_time_is_one_attempt_with_no_delays() -> None:
    clock = FakeClock()
    with retry_stats() as stats:
        build(clock, name="fast").call(Flaky())
    assert stats == [
        RetryStats(attempts=1, retries=0, delays=[], elapsed=0.0, outcome="success", name="fast")
    ]


def test_stats_show_attempts_delays_elapsed_and_outcome() -> None:
    clock = FakeClock()
    retry = build(clock, attempts=3)
    with retry_stats() as stats:
        retry.call(Flaky(ConnectionError(), clock=clock, duration=0.25))
        with pytest.raises(RetryExhausted):
            retry.call(Flaky(*[ConnectionError()] * 3))
        with pytest.raises(KeyError):
            retry.call(Flaky(KeyError()))
        with pytest.raises(DeadlineExceeded):
            build(clock, deadline=0.1).call(Flaky(ConnectionError()))
        with pytest.raises(RetryExhausted):
            build(clock, budget=CountingBudget(0)).call(Flaky(ConnectionError()))
    assert [(s.attempts, s.retries, s.delays, s.outcome) for s in stats] == [
        (2, 1, [0.5], "success"),
        (3, 2, [0.5, 0.5], "gave_up"),
        (1, 0, [], "not_retryable"),
        (1, 0, [], "deadline"),
        (1, 0, [], "budget"),
    ]
    assert stats[0].elapsed == pytest.approx(0.25 + 0.5 + 0.25)


def test_no_block_collects_nothing_and_blocks_nest() -> None:
    clock = FakeClock()
    retry = build(clock)
    retry.call(Flaky())
    with retry_stats() as outer:
        retry.call(Flaky())
        with retry_stats() as inner:
            retry.call(Flaky(ConnectionError()))
        retry.call(Flaky())
    retry.call(Flaky())
    assert [s.attempts for s in outer] == [1, 2, 1]
    assert [s.attempts for s in inner] == [2]


def test_fifty_threads_each_see_only_their_own_call() -> None:
    clock = FakeClock()
    retry = build(clock, attempts=5, backoff=Backoff.constant(0.0))
    barrier = threading.Barrier(50, timeout=10)

    def worker(i: int) -> list[RetryStats]:
        failures = i % 4
        calls = {"n": 0}

        def fn() -> int:
            calls["n"] += 1
            if calls["n"] == 1:
                barrier.wait()  # every thread is inside its call at the same time
            if calls["n"] <= failures:
                raise ConnectionError
            return i

        with retry_stats() as stats:
            assert retry.call(fn) == i
        return stats

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(worker, range(50)))
    for i, stats in enumerate(results):
        assert len(stats) == 1
        assert stats[0].attempts == i % 4 + 1
        assert stats[0].retries == i % 4


async def test_fifty_tasks_each_see_only_their_own_call() -> None:
    clock = FakeClock()
    retry = build(clock, attempts=5, backoff=Backoff.constant(0.0))
    barrier = asyncio.Barrier(50)

    async def worker(i: int) -> list[RetryStats]:
        failures = i % 4
        calls = {"n": 0}

        async def fn() -> int:
            calls["n"] += 1
            if calls["n"] == 1:
                await barrier.wait()
            if calls["n"] <= failures:
                raise ConnectionError
            return i

        with retry_stats() as stats:
            assert await retry.acall(fn) == i
        return stats

    results = await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(50))), timeout=10)
    for i, stats in enumerate(results):
        assert [(s.attempts, s.outcome) for s in stats] == [(i % 4 + 1, "success")]


async def test_tasks_started_inside_a_block_report_to_it() -> None:
    retry = build(FakeClock())

    async def ok() -> str:
        return "ok"

    with retry_stats() as stats:
        await asyncio.gather(*(retry.acall(ok) for _ in range(3)))
    assert len(stats) == 3
