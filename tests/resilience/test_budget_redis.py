"""RetryBudget in Redis: shared by the fleet, bounded keys with a TTL, and the policy when Redis is gone."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._budget import RetryBudget
from buttress.resilience._redis_state import RedisState, StorePolicy

DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    name = f"test-budget-{uuid.uuid4().hex}"
    yield name
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def make(state: RedisState, clock: object = None, **kwargs: object) -> RetryBudget:
    if clock is not None:
        kwargs["clock"] = clock
    return RetryBudget(store=state, metrics=MetricsRegistry(), events=EventBus(), **kwargs)  # type: ignore[arg-type]


def test_budgets_on_two_connections_share_one_window(redis_url: str, namespace: str) -> None:
    first = RedisState(redis_url, prefix=namespace, metrics=MetricsRegistry())
    second = RedisState(redis_url, prefix=namespace, metrics=MetricsRegistry())
    try:
        here, there = make(first, ratio=0.2, min_retries=0), make(second, ratio=0.2, min_retries=0)
        for _ in range(50):
            here.record_call()
        granted = [there.try_spend() for _ in range(6)] + [here.try_spend() for _ in range(6)]
        assert granted.count(True) == 10
        assert here.snapshot().retries == there.snapshot().retries == 10
        assert make(first, name="other").snapshot().calls == 0  # names do not collide
    finally:
        first.close()
        second.close()


def test_the_hash_stays_bounded_and_expires(redis_url: str, namespace: str) -> None:
    clock = FakeClock()
    state = RedisState(redis_url, prefix=namespace, clock=clock, metrics=MetricsRegistry())
    try:
        shared = make(state, clock, window=1.0, name="bounded")
        for _ in range(100):
            shared.record_call()
            shared.try_spend()
            clock.advance(0.1)
        client = state.client()
        key = state.key("budget", "bounded")
        assert client.hlen(key) == 30
        assert 1000 < client.pttl(key) <= 1.0 * 2000 + 1000
    finally:
        state.close()


def _fleet_member(url: str, namespace: str, ready: Any, start: Any, results: Any) -> None:
    """One member of the fleet: 200 calls, each followed by a retry attempt, against the shared budget."""
    state = RedisState(url, prefix=namespace, metrics=MetricsRegistry())
    member = RetryBudget(
        ratio=0.2, window=60.0, min_retries=10, name="fleet", store=state, metrics=MetricsRegistry()
    )
    member.snapshot()  # connected before the race starts
    ready.set()
    start.wait(timeout=30)
    granted = 0
    for _ in range(200):
        member.record_call()
        granted += member.try_spend()
    state.close()
    results.put(granted)


def test_processes_share_one_budget_through_redis(redis_url: str, namespace: str) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready, start = context.Event(), context.Event()
    child = context.Process(target=_fleet_member, args=(redis_url, namespace, ready, start, results))
    child.start()
    try:
        mine: queue.Queue[int] = queue.Queue()
        here = threading.Thread(
            target=_fleet_member, args=(redis_url, namespace, threading.Event(), start, mine)
        )
        here.start()
        assert ready.wait(timeout=60)
        start.set()  # both members go at once: this process and the spawned one
        here.join(timeout=60)
        granted = [results.get(timeout=60), mine.get(timeout=1)]
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    assert sum(granted) <= 0.2 * 400 + 10
    assert min(granted) > 0
    state = RedisState(redis_url, prefix=namespace, metrics=MetricsRegistry())
    try:
        snap = make(state, window=60.0, name="fleet").snapshot()
    finally:
        state.close()
    assert (snap.calls, snap.retries) == (400, sum(granted))


def down(policy: StorePolicy) -> tuple[RedisState, FakeClock]:
    clock = FakeClock()
    return RedisState(
        DOWN_URL, policy=policy, clock=clock, metrics=MetricsRegistry(), events=EventBus()
    ), clock


def test_policy_local_keeps_a_budget_in_this_process() -> None:
    state, clock = down("local")
    try:
        local = make(state, clock, ratio=0.2, min_retries=0)
        for _ in range(10):
            local.record_call()
        assert [local.try_spend() for _ in range(3)] == [True, True, False]
        snap = local.snapshot()
        assert (snap.calls, snap.retries, snap.degraded, snap.store) == (10, 2, True, "redis")
        assert not state.available
    finally:
        state.close()


@pytest.mark.parametrize(("policy", "answer"), [("open", True), ("closed", False)])
def test_policy_open_allows_and_closed_denies(policy: StorePolicy, answer: bool) -> None:
    state, clock = down(policy)
    try:
        shared = make(state, clock, ratio=0.0, min_retries=1)
        shared.record_call()
        assert [shared.try_spend() for _ in range(3)] == [answer] * 3
        assert shared.snapshot().calls == 0  # nothing is kept locally under open or closed
    finally:
        state.close()


async def test_async_policies_match_the_sync_ones() -> None:
    results: dict[str, list[bool]] = {}
    for policy in ("local", "open", "closed"):
        state, clock = down(policy)  # type: ignore[arg-type]
        try:
            shared = make(state, clock, ratio=0.5, min_retries=0)
            for _ in range(2):
                await shared.arecord_call()
            results[policy] = [await shared.atry_spend() for _ in range(2)]
            snap = await shared.asnapshot()
            assert snap.degraded
        finally:
            await state.aclose()
    assert results == {"local": [True, False], "open": [True, True], "closed": [False, False]}


async def test_async_calls_use_the_shared_window(redis_url: str, namespace: str) -> None:
    state = RedisState(redis_url, prefix=namespace, metrics=MetricsRegistry())
    try:
        shared = make(state, ratio=0.5, min_retries=0, name="async")
        for _ in range(4):
            await shared.arecord_call()
        assert [await shared.atry_spend() for _ in range(3)] == [True, True, False]
        assert (await shared.asnapshot()).retries == 2
    finally:
        await state.aclose()
