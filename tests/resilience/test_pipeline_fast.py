"""A pipeline's fast paths (retry with a breaker and a limiter): every way out of them ends as the ordinary
path would, sync and async: refusals, waits, failures, retried results, calls that suspend, the deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import CircuitOpen, DeadlineExceeded, RateLimited, RetryExhausted
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import Backoff, CircuitBreaker, Pipeline, RateLimiter, RedisState, Retry, retry_stats

NO_WAIT = Backoff.constant(0.0)


def build(
    clock: FakeClock | None = None,
    *,
    on: Any = ConnectionError,
    deadline: float | None = 30.0,
    rate: str = "1000/s",
    burst: int = 100,
    max_wait: float = 10.0,
    retry_if_result: Callable[[Any], bool] | None = None,
) -> tuple[Pipeline, CircuitBreaker, RateLimiter]:
    kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
    breaker = CircuitBreaker("fast", consecutive_failures=2, open_duration=60.0, **kwargs)
    limiter = RateLimiter(rate, burst=burst, max_wait=max_wait, **kwargs)
    retry = Retry(
        on=on, attempts=3, backoff=NO_WAIT, deadline=deadline, retry_if_result=retry_if_result, **kwargs
    )
    return Pipeline("fast", retry=retry, breaker=breaker, limiter=limiter, **kwargs), breaker, limiter


class Calls:
    """A sync and an async function that fail with ``errors`` in order, then return ``value``."""

    def __init__(self, *errors: BaseException, value: object = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.count = 0

    def sync(self) -> object:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value

    async def asynchronous(self) -> object:
        return self.sync()


async def run(pipeline: Pipeline, calls: Calls, mode: str) -> object:
    if mode == "sync":
        return pipeline.call(calls.sync)
    return await pipeline.acall(calls.asynchronous)


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
async def test_a_failure_is_recorded_then_retried(mode: str) -> None:
    pipeline, breaker, _ = build()
    calls = Calls(ConnectionError("down"))
    with retry_stats() as stats:
        assert await run(pipeline, calls, mode) == "ok"
    assert calls.count == 2
    assert breaker.telemetry.counts()["failure"] == 1
    assert breaker.telemetry.counts()["success"] == 1
    assert [(s.attempts, s.outcome) for s in stats] == [(2, "success")]


@MODES
async def test_an_error_not_retried_is_recorded_and_raised(mode: str) -> None:
    pipeline, breaker, _ = build()
    with pytest.raises(KeyError):
        await run(pipeline, Calls(KeyError("k")), mode)
    assert breaker.telemetry.counts()["failure"] == 1


@MODES
async def test_a_refusing_breaker_is_judged_by_the_retry(mode: str) -> None:
    clock = FakeClock()
    pipeline, breaker, limiter = build(clock)
    breaker.isolate()
    with pytest.raises(CircuitOpen):
        await run(pipeline, Calls(), mode)  # CircuitOpen is not in ``on``: raised at once
    assert limiter.snapshot().available == pytest.approx(100.0)  # a refused call spent no token
    retried, _, _ = build(clock, on=(ConnectionError, CircuitOpen))
    retried.breaker.isolate()  # type: ignore[union-attr]
    with pytest.raises(RetryExhausted) as caught:
        await run(retried, Calls(), mode)
    assert caught.value.attempts == 3


@MODES
async def test_a_result_the_retry_refuses_is_tried_again(mode: str) -> None:
    pipeline, breaker, _ = build(retry_if_result=lambda result: result is None)
    calls = Calls(value=None)
    with pytest.raises(RetryExhausted):
        await run(pipeline, calls, mode)
    assert calls.count == 3
    assert breaker.telemetry.counts()["success"] == 3  # the upstream answered each time


@MODES
async def test_a_limiter_refusal_releases_the_permit_and_is_judged_by_the_retry(mode: str) -> None:
    clock = FakeClock()
    pipeline, breaker, _ = build(clock, rate="1/minute", burst=1, max_wait=0.0)
    assert await run(pipeline, Calls(), mode) == "ok"
    with pytest.raises(RateLimited):
        await run(pipeline, Calls(), mode)
    assert breaker.state == "closed"
    assert breaker.telemetry.counts()["failure"] == 0


@MODES
async def test_a_limiter_wait_takes_the_ordinary_path(mode: str) -> None:
    pipeline, breaker, limiter = build(rate="100/s", burst=1)
    assert await run(pipeline, Calls(), mode) == "ok"
    start = time.monotonic()
    assert await run(pipeline, Calls(), mode) == "ok"  # waited about 10 ms for its token
    assert time.monotonic() - start >= 0.005
    assert limiter.telemetry.counts()["waited"] == 1
    assert breaker.telemetry.counts()["success"] == 2


def test_the_breaker_times_the_call_not_the_wait_for_a_token() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("slow", slow_call_duration=1.0, clock=clock)
    limiter = RateLimiter("1/s", burst=1, clock=clock)
    pipeline = Pipeline(
        "slow", retry=Retry(on=ConnectionError, clock=clock), breaker=breaker, limiter=limiter, clock=clock
    )
    assert pipeline.call(lambda: "first") == "first"
    assert pipeline.call(lambda: "waited 1 s") == "waited 1 s"  # the fake clock's sleep moves it 1 s
    assert breaker.telemetry.counts()["slow"] == 0


async def test_a_call_that_suspends_is_recorded_when_it_ends() -> None:
    pipeline, breaker, _ = build()
    calls: list[int] = []

    async def suspends() -> str:
        calls.append(1)
        await asyncio.sleep(0)
        if len(calls) == 1:
            raise ConnectionError("down")
        return "ok"

    assert await pipeline.acall(suspends) == "ok"
    assert breaker.telemetry.counts()["failure"] == 1
    assert breaker.telemetry.counts()["success"] == 1


async def test_the_deadline_cuts_a_call_that_awaits_and_the_breaker_records_no_failure() -> None:
    pipeline, breaker, _ = build(deadline=0.05)

    async def hangs() -> None:
        await asyncio.sleep(0)
        await asyncio.Event().wait()

    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        await pipeline.acall(hangs)
    assert time.monotonic() - start < 0.05 + 0.1
    assert isinstance(caught.value.__cause__, asyncio.CancelledError)
    assert breaker.telemetry.counts()["failure"] == 0  # cut short: released, not failed
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert await pipeline.acall(Calls().asynchronous) == "ok"


async def test_without_a_deadline_a_call_that_awaits_is_never_cut() -> None:
    pipeline, _, _ = build(deadline=None)

    async def sleeps() -> str:
        await asyncio.sleep(0.01)
        return "slept"

    assert await pipeline.acall(sleeps) == "slept"


async def test_the_callers_cancellation_of_a_suspended_call_releases_the_permit() -> None:
    pipeline, breaker, _ = build()
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(pipeline.acall(hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.telemetry.counts()["failure"] == 0


async def test_a_decorated_coroutine_function_takes_the_fast_path() -> None:
    pipeline, _, _ = build()

    @pipeline
    async def double(n: int) -> int:
        return n * 2

    assert await double(21) == 42


async def test_redis_stores_take_the_ordinary_path(redis_url: str) -> None:
    state = RedisState(redis_url, prefix=f"t{uuid.uuid4().hex}", metrics=MetricsRegistry())
    try:
        for breaker, limiter in (
            (CircuitBreaker("r", store=state), RateLimiter("100/s", burst=10)),
            (CircuitBreaker("m"), RateLimiter("100/s", burst=10, name="r", store=state)),
            (None, RateLimiter("100/s", burst=10, name="alone", store=state)),
        ):
            pipeline = Pipeline(
                "r", retry=Retry(on=ConnectionError, backoff=NO_WAIT), breaker=breaker, limiter=limiter
            )
            calls = Calls(ConnectionError("down"))
            assert await pipeline.acall(calls.asynchronous) == "ok"
            assert calls.count == 2
    finally:
        await state.aclose()


def test_a_wait_for_a_token_counts_toward_the_retry_deadline() -> None:
    clock = FakeClock()
    limiter = RateLimiter("1/s", burst=1, clock=clock)
    retry = Retry(on=ConnectionError, deadline=1.5, backoff=Backoff.constant(0.6), clock=clock)
    pipeline = Pipeline("wait", retry=retry, limiter=limiter, clock=clock)
    assert pipeline.call(lambda: "first") == "first"
    with pytest.raises(DeadlineExceeded) as caught:  # 1 s waited for the token + 0.6 s backoff > 1.5 s
        pipeline.call(Calls(ConnectionError("down")).sync)
    assert caught.value.context["attempts"] == 1


async def test_a_slow_call_under_a_redis_breakers_fast_permit_is_recorded_through_redis(
    redis_url: str,
) -> None:
    clock = FakeClock()
    state = RedisState(redis_url, prefix=f"t{uuid.uuid4().hex}", clock=clock, metrics=MetricsRegistry())
    breaker = CircuitBreaker("slow", store=state, slow_call_duration=1.0, clock=clock)
    pipeline = Pipeline("slow", retry=Retry(on=ConnectionError, clock=clock), breaker=breaker, clock=clock)

    async def slow() -> str:
        clock.advance(2.0)
        return "done"

    try:
        assert await pipeline.acall(Calls().asynchronous) == "ok"  # loads this process's copy of the state
        for _ in range(3):
            assert await pipeline.acall(slow) == "done"  # a fast permit, but a slow call is written at once
        assert breaker.telemetry.counts()["slow"] == 3
    finally:
        await state.aclose()


async def test_an_awaitable_that_is_not_a_coroutine_takes_the_fast_path_too() -> None:
    pipeline, breaker, _ = build()
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("ready")
    assert await pipeline.acall(lambda: done) == "ready"
    pending: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    call = asyncio.create_task(pipeline.acall(lambda: pending))
    await asyncio.sleep(0)
    pending.set_result("later")
    assert await call == "later"
    assert breaker.telemetry.counts()["success"] == 2
