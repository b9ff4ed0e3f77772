"""RetryBudget in memory: validation, the lock-free call counter under threads, and Retry using it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from buttress.clock import FakeClock
from buttress.errors import RetryExhausted, ValidationError
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._backoff import Backoff
from buttress.resilience._budget import BudgetSnapshot, RetryBudget
from buttress.resilience._budget_memory import MemoryBudgetStore
from buttress.resilience._retry import Retry


def budget(**kwargs: object) -> RetryBudget:
    kwargs.setdefault("clock", FakeClock())
    return RetryBudget(metrics=MetricsRegistry(), events=EventBus(), **kwargs)  # type: ignore[arg-type]


def test_defaults_follow_finagle() -> None:
    default = RetryBudget(metrics=MetricsRegistry())
    assert (default.ratio, default.window, default.min_retries, default.name, default.store) == (
        0.2,
        10.0,
        10,
        "default",
        "memory",
    )
    assert (
        repr(default) == "RetryBudget(ratio=0.2, window=10.0, min_retries=10, name='default', store='memory')"
    )


def test_the_system_clock_works_too() -> None:
    live = RetryBudget(ratio=0.5, min_retries=0, metrics=MetricsRegistry(), events=EventBus())
    live.record_call()
    live.record_call()
    assert [live.try_spend(), live.try_spend()] == [True, False]
    assert live.snapshot() == BudgetSnapshot("default", 2, 1, 0, 0.5, 10.0, "memory")


def test_calls_from_many_threads_are_all_counted() -> None:
    shared = budget(ratio=0.0, min_retries=0)
    barrier = threading.Barrier(8, timeout=10)

    def hammer() -> None:
        barrier.wait()
        for _ in range(2000):
            shared.record_call()

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(hammer) for _ in range(8)]:
            future.result()
    assert shared.snapshot().calls == 16_000
    assert shared.telemetry.counts()["call"] == 16_000


def test_threads_racing_for_the_last_retries_never_overspend() -> None:
    shared = budget(ratio=0.0, min_retries=100)
    barrier = threading.Barrier(8, timeout=10)

    def grab() -> int:
        barrier.wait()
        return sum(shared.try_spend() for _ in range(50))

    with ThreadPoolExecutor(8) as pool:
        granted = sum(pool.map(lambda _: grab(), range(8)))
    assert granted == 100
    assert shared.snapshot().retries == 100


def test_a_time_just_below_a_bucket_edge_that_rounds_onto_it_starts_the_next_bucket() -> None:
    now = [0.0]
    ring = MemoryBudgetStore(1.0, lambda: now[0])  # 0.1 s buckets
    ring.record()
    now[0] = 0.09999999999  # rounds to 100000 us: the second bucket, as Redis would see it
    ring.record()
    assert ring._epoch == 1
    assert ring.counts() == (2, 0, False)
    now[0] = 1.05  # the first bucket is out of the window, the second still in
    assert ring.counts() == (1, 0, False)


def test_retry_with_a_budget_stops_retrying_when_it_is_spent() -> None:
    clock = FakeClock()
    shared = budget(ratio=0.0, min_retries=2, clock=clock)
    retry = Retry(
        on=ConnectionError,
        attempts=5,
        backoff=Backoff.constant(0.0),
        budget=shared,
        clock=clock,
        metrics=MetricsRegistry(),
        events=EventBus(),
    )
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError

    with pytest.raises(RetryExhausted) as caught:
        retry.call(down)
    assert len(calls) == 3  # the first attempt and the two retries the budget had
    assert caught.value.context["reason"] == "budget"
    assert retry.budget is shared


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"ratio": -0.1}, "ratio", "ratio must be a finite number >= 0"),
        ({"ratio": float("nan")}, "ratio", "e.g. 0.2"),
        ({"ratio": True}, "ratio", "got True"),
        ({"ratio": "0.2"}, "ratio", "got '0.2'"),
        ({"window": 0}, "window", "window must be a number of seconds between 0.01 and 86400"),
        ({"window": 0.001}, "window", "e.g. 10.0"),
        ({"window": 1e6}, "window", "got 1000000.0"),
        ({"window": True}, "window", "got True"),
        ({"min_retries": -1}, "min_retries", "min_retries must be an integer >= 0"),
        ({"min_retries": 1.5}, "min_retries", "e.g. 10"),
        ({"min_retries": False}, "min_retries", "got False"),
        (
            {"store": "redis"},
            "store",
            "store must be 'memory' or a RedisState (shorthands), or a BudgetStore, got 'redis'",
        ),
        ({"store": None}, "store", "e.g. store=RedisState('redis://127.0.0.1:6379/0')"),
        ({"name": ""}, "name", "non-empty string"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(kwargs: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        budget(**kwargs)
    assert caught.value.field == field
    assert text in str(caught.value)
