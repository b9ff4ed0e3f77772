"""Names that cannot collide, the store= forms every shared-state strategy accepts, and the fast paths."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import CircuitOpen, ValidationError
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import (
    BreakerConfig,
    Bulkhead,
    CircuitBreaker,
    MemoryBreakerStore,
    MemoryBudgetStore,
    MemoryLimiterStore,
    Pipeline,
    RateLimiter,
    RedisBreakerStore,
    RedisState,
    Retry,
    RetryBudget,
    Timeout,
)


@pytest.fixture
def state(redis_url: str) -> Iterator[RedisState]:
    state = RedisState(redis_url, prefix=f"naming-{uuid.uuid4().hex}", metrics=MetricsRegistry())
    yield state
    state.close()


def boom() -> None:
    raise ConnectionError("down")


def test_unnamed_shared_breakers_take_their_functions_names_and_never_share(state: RedisState) -> None:
    first = CircuitBreaker(consecutive_failures=1, store=state, metrics=MetricsRegistry())
    second = CircuitBreaker(consecutive_failures=1, store=state, metrics=MetricsRegistry())

    @first
    def fetch_users() -> str:
        raise ConnectionError("down")

    @second
    def fetch_orders() -> str:
        return "orders"

    test = "test_unnamed_shared_breakers_take_their_functions_names_and_never_share"
    assert first.name == f"{__name__}.{test}.<locals>.fetch_users"
    assert second.name.endswith("<locals>.fetch_orders")
    assert first.telemetry.key == first.name  # the metric label follows the name
    with pytest.raises(ConnectionError):
        fetch_users()
    with pytest.raises(CircuitOpen):
        fetch_users()
    assert fetch_orders() == "orders"  # its own state in Redis: still closed
    assert second.snapshot().state == "closed"


def test_an_unnamed_shared_strategy_that_decorates_nothing_says_pass_name(state: RedisState) -> None:
    breaker = CircuitBreaker(store=state, metrics=MetricsRegistry())
    limiter = RateLimiter("10/s", store=state, metrics=MetricsRegistry())
    for use in (lambda: breaker.call(lambda: 1), breaker.acquire, breaker.snapshot, limiter.try_acquire):
        with pytest.raises(ValidationError, match="pass name=") as caught:
            use()
        assert caught.value.field == "name"
    with pytest.raises(ValidationError, match=r"pass name=, e\.g\. RetryBudget\(\.\.\., name="):
        RetryBudget(store=state, metrics=MetricsRegistry())  # a budget decorates nothing: at once


async def test_the_async_path_refuses_an_unnamed_shared_breaker_too(state: RedisState) -> None:
    breaker = CircuitBreaker(store=state, metrics=MetricsRegistry())
    limiter = RateLimiter("10/s", store=state, metrics=MetricsRegistry())
    with pytest.raises(ValidationError, match="pass name="):
        await breaker.aacquire()
    with pytest.raises(ValidationError, match="pass name="):
        await limiter.aacquire()


def test_two_unnamed_shared_breakers_on_one_qualname_are_refused(state: RedisState) -> None:
    def decorate(strategy: Callable[[Callable[[], int]], Any]) -> None:
        @strategy
        def same() -> int:
            return 1

    keep = CircuitBreaker(store=state, metrics=MetricsRegistry())
    decorate(keep)
    with pytest.raises(ValidationError, match="pass name= to each"):
        decorate(CircuitBreaker(store=state, metrics=MetricsRegistry()))
    decorate(keep)  # the same breaker decorating again is fine: it already has its name
    limiter = RateLimiter("10/s", store=state, metrics=MetricsRegistry())
    decorate(limiter)
    with pytest.raises(ValidationError, match="pass name= to each"):
        decorate(RateLimiter("10/s", store=state, metrics=MetricsRegistry()))


def test_a_pipeline_names_its_unnamed_shared_breaker_and_limiter(state: RedisState) -> None:
    breaker = CircuitBreaker(store=state, metrics=MetricsRegistry())
    limiter = RateLimiter("100/s", burst=5, store=state, metrics=MetricsRegistry())

    @Pipeline("p", breaker=breaker, limiter=limiter)
    def checkout() -> str:
        return "done"

    assert checkout() == "done"
    assert (
        breaker.name
        == limiter.name
        == f"{__name__}.test_a_pipeline_names_its_unnamed_shared_breaker_and_limiter.<locals>.checkout"
    )


def test_memory_strategies_keep_the_default_name() -> None:
    breaker = CircuitBreaker(metrics=MetricsRegistry())
    breaker(boom)
    assert breaker.name == "default"
    assert RateLimiter("1/s", metrics=MetricsRegistry()).name == "default"
    assert RetryBudget(metrics=MetricsRegistry()).name == "default"


def test_store_accepts_a_store_object_built_for_the_strategy(state: RedisState) -> None:
    clock = FakeClock()
    config = BreakerConfig(consecutive_failures=2)
    memory = MemoryBreakerStore(config, clock.monotonic)
    breaker = CircuitBreaker(consecutive_failures=2, store=memory, clock=clock, metrics=MetricsRegistry())
    assert breaker.store is memory
    assert breaker.is_local
    shared = RedisBreakerStore(state, "from-the-store", config)
    named = CircuitBreaker(consecutive_failures=2, store=shared, metrics=MetricsRegistry())
    assert (named.name, named.store_kind, named.snapshot().store) == ("from-the-store", "redis", "redis")
    with pytest.raises(ValidationError, match="another config") as caught:
        CircuitBreaker(consecutive_failures=3, store=memory, metrics=MetricsRegistry())
    assert caught.value.field == "store"
    buckets = MemoryLimiterStore(interval=0.1, burst=2, max_keys=10, now=clock.monotonic)
    limiter = RateLimiter("10/s", burst=2, store=buckets, clock=clock, metrics=MetricsRegistry())
    assert limiter.store is buckets
    assert limiter.try_acquire()
    with pytest.raises(ValidationError, match="burst"):
        RateLimiter("10/s", burst=3, store=buckets, metrics=MetricsRegistry())
    window = MemoryBudgetStore(5.0, clock.monotonic)
    assert RetryBudget(window=5.0, store=window, metrics=MetricsRegistry()).backend is window
    with pytest.raises(ValidationError, match="window"):
        RetryBudget(window=10.0, store=window, metrics=MetricsRegistry())
    with pytest.raises(ValidationError, match="BreakerStore"):
        CircuitBreaker(store=buckets, metrics=MetricsRegistry())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Retry(on=ConnectionError, attempts=0),
        lambda: Retry(on=ConnectionError, deadline=-1),
        lambda: CircuitBreaker(window=0),
        lambda: RateLimiter("fast"),
        lambda: RetryBudget(ratio=-1),
        lambda: Bulkhead(0),
        lambda: Timeout(0),
        lambda: CircuitBreaker(name="has space"),
    ],
)
def test_argument_errors_are_value_errors(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"e\.g\.|got") as caught:
        build()
    assert isinstance(caught.value, ValidationError)


def test_fast_paths_answer_without_io_when_they_can_and_defer_to_the_async_methods_otherwise(
    state: RedisState,
) -> None:
    clock = FakeClock()
    memory = CircuitBreaker("m", consecutive_failures=1, clock=clock, metrics=MetricsRegistry())
    permit = memory.acquire_fast()
    assert permit is not None
    assert memory.record_success_fast(permit, 0.01)
    memory.record_failure(permit, ConnectionError("down"), 0.01)
    with pytest.raises(CircuitOpen):
        memory.acquire_fast()  # refused without I/O, like acquire()
    shared = CircuitBreaker("s", store=state, metrics=MetricsRegistry())
    assert shared.acquire_fast() is None  # no copy of the shared state yet: the caller awaits aacquire()
    closed = shared.acquire()  # one round trip: this process's copy is fresh for sync_interval
    assert shared.acquire_fast() is closed
    assert shared.record_success_fast(closed, 0.01)  # counted here, written with the next script
    assert not shared.record_success_fast(closed, 120.0)  # a slow call is written at once
    shared.store.stale()  # type: ignore[attr-defined]
    assert shared.acquire_fast() is None
    limiter = RateLimiter("1/s", burst=1, clock=clock, metrics=MetricsRegistry())
    assert limiter.acquire_fast()
    assert not limiter.acquire_fast()  # a wait is needed: nothing taken, nothing counted
    assert limiter.telemetry.counts() == {"admitted": 1, "rejected": 0, "waited": 0}
    assert not RateLimiter("1/s", name="s", store=state, metrics=MetricsRegistry()).acquire_fast()
