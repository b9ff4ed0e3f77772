"""Pipeline: the documented order, what each layer sees from the others, and every way to use it."""

from __future__ import annotations

import asyncio
import inspect
import uuid

import pytest

from buttress.clock import FakeClock
from buttress.errors import (
    BulkheadFull,
    CircuitOpen,
    DeadlineExceeded,
    RateLimited,
    RetryExhausted,
    ValidationError,
)
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import (
    Backoff,
    Bulkhead,
    CircuitBreaker,
    Fallback,
    Hedge,
    Pipeline,
    RateLimiter,
    RedisState,
    Retry,
    Timeout,
)

NO_WAIT = Backoff.constant(0.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> MetricsRegistry:
    return MetricsRegistry()


def _failing(times: int, error: type[Exception] = ConnectionError) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error("upstream down")
        return "ok"

    return calls, fn


def test_each_retry_asks_the_breaker_again_and_fallback_catches_what_is_left(clock: FakeClock) -> None:
    breaker = CircuitBreaker("up", consecutive_failures=2, open_duration=60.0, clock=clock)
    pipeline = Pipeline(
        "up",
        fallback=Fallback(on=(RetryExhausted, CircuitOpen), value="cached"),
        retry=Retry(
            on=(ConnectionError, CircuitOpen), attempts=5, backoff=NO_WAIT, deadline=None, clock=clock
        ),
        breaker=breaker,
        clock=clock,
    )
    calls, fn = _failing(100)
    assert pipeline.call(fn) == "cached"  # type: ignore[arg-type]
    assert len(calls) == 2  # the breaker opened after two failures: later attempts never reached fn
    assert breaker.state == "open"


def test_retry_exhausted_without_fallback_names_the_attempts(clock: FakeClock) -> None:
    pipeline = Pipeline("up", retry=Retry(on=ConnectionError, attempts=3, backoff=NO_WAIT, clock=clock))
    calls, fn = _failing(100)
    with pytest.raises(RetryExhausted) as caught:
        pipeline.call(fn)  # type: ignore[arg-type]
    assert caught.value.attempts == 3
    assert len(calls) == 3


def test_a_call_the_breaker_refuses_spends_no_token(clock: FakeClock) -> None:
    breaker = CircuitBreaker("b", consecutive_failures=1, clock=clock)
    limiter = RateLimiter("1/minute", burst=2, clock=clock)
    pipeline = Pipeline("p", breaker=breaker, limiter=limiter, clock=clock)
    _, fn = _failing(100)
    with pytest.raises(ConnectionError):
        pipeline.call(fn)  # type: ignore[arg-type]
    for _ in range(5):
        with pytest.raises(CircuitOpen):
            pipeline.call(fn)  # type: ignore[arg-type]
    assert limiter.snapshot().available == pytest.approx(1.0)  # only the first call took a token


def test_a_local_rejection_is_not_an_upstream_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("b", consecutive_failures=1, half_open_probes=1, open_duration=10.0, clock=clock)
    limiter = RateLimiter("1/minute", burst=1, max_wait=0.0, clock=clock)
    pipeline = Pipeline("p", breaker=breaker, limiter=limiter, clock=clock)
    assert pipeline.call(lambda: "ok") == "ok"  # spends the only token
    for _ in range(3):
        with pytest.raises(RateLimited):
            pipeline.call(lambda: "ok")
    assert breaker.state == "closed"  # three limiter rejections did not trip a 1-failure breaker
    assert breaker.snapshot().failures == 0


def test_the_limiter_releases_a_half_open_probe_it_refused(clock: FakeClock) -> None:
    breaker = CircuitBreaker("b", consecutive_failures=1, half_open_probes=1, open_duration=10.0, clock=clock)
    limiter = RateLimiter("1/minute", burst=1, max_wait=0.0, clock=clock)
    pipeline = Pipeline("p", breaker=breaker, limiter=limiter, clock=clock)
    _, fn = _failing(1)
    with pytest.raises(ConnectionError):
        pipeline.call(fn)  # type: ignore[arg-type]
    clock.advance(10.0)
    with pytest.raises(RateLimited):
        pipeline.call(fn)  # type: ignore[arg-type]  # took the probe lease, then the limiter refused
    clock.advance(60.0)
    assert pipeline.call(fn) == "ok"  # type: ignore[arg-type]  # the lease was given back: a new probe
    assert breaker.state == "closed"


def test_a_bulkhead_rejection_releases_the_breaker_and_the_slot_frees_on_error() -> None:
    bulkhead = Bulkhead(1, max_queued=0)
    breaker = CircuitBreaker("b", consecutive_failures=1)
    pipeline = Pipeline("p", breaker=breaker, bulkhead=bulkhead)
    bulkhead.acquire()
    with pytest.raises(BulkheadFull):
        pipeline.call(lambda: "x")
    bulkhead.release()
    assert breaker.state == "closed"
    with pytest.raises(ZeroDivisionError):
        pipeline.call(lambda: 1 / 0)
    assert bulkhead.snapshot().active == 0


def test_the_timeout_bounds_one_attempt_and_counts_as_a_failure() -> None:
    breaker = CircuitBreaker("b", consecutive_failures=1)
    pipeline = Pipeline("p", breaker=breaker, timeout=Timeout(0.05))

    async def slow() -> None:
        await asyncio.sleep(10)

    with pytest.raises(DeadlineExceeded):
        asyncio.run(pipeline.acall(slow))
    assert breaker.state == "open"


async def test_async_pipeline_with_every_strategy(clock: FakeClock) -> None:
    calls: list[int] = []
    pipeline = Pipeline(
        "all",
        fallback=Fallback(on=RetryExhausted, value=-1),
        retry=Retry(on=ConnectionError, attempts=3, backoff=NO_WAIT),
        hedge=Hedge(delay=5.0),
        breaker=CircuitBreaker("all"),
        limiter=RateLimiter("1000/s", burst=100),
        bulkhead=Bulkhead(4),
        timeout=Timeout(5.0),
    )

    @pipeline
    async def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) < 2:
            raise ConnectionError
        return n * 2

    assert await flaky(21) == 42
    assert calls == [21, 21]
    assert "fallback='default'" in repr(pipeline)


async def test_cancelling_an_async_call_releases_the_probe(clock: FakeClock) -> None:
    breaker = CircuitBreaker("b", consecutive_failures=1, open_duration=1.0, clock=clock)
    pipeline = Pipeline("p", breaker=breaker, clock=clock)
    with pytest.raises(ConnectionError):
        await pipeline.acall(_araise)
    clock.advance(1.0)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(pipeline.acall(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pipeline.acall(_aok) == "ok"  # the cancelled probe gave its place back at once


async def _araise() -> None:
    raise ConnectionError


async def _aok() -> str:
    return "ok"


async def test_a_redis_breaker_goes_through_the_async_path(redis_url: str) -> None:
    state = RedisState(redis_url, prefix=f"t{uuid.uuid4().hex}", metrics=MetricsRegistry())
    breaker = CircuitBreaker("shared", consecutive_failures=1, store=state)
    limiter = RateLimiter("100/s", burst=10, store=state)
    pipeline = Pipeline("p", breaker=breaker, limiter=limiter)
    try:
        assert not breaker.is_local
        assert await pipeline.acall(_aok) == "ok"
        with pytest.raises(ConnectionError):
            await pipeline.acall(_araise)
        with pytest.raises(CircuitOpen):
            await pipeline.acall(_aok)
        await breaker.areset()
        async with pipeline.aguard():
            pass
        with pytest.raises(KeyError):
            async with pipeline.aguard():
                raise KeyError("x")
        assert (await breaker.asnapshot()).state == "open"
    finally:
        await state.aclose()


def test_guard_applies_breaker_limiter_and_bulkhead(clock: FakeClock) -> None:
    breaker = CircuitBreaker("g", consecutive_failures=1, clock=clock)
    pipeline = Pipeline("g", breaker=breaker, limiter=RateLimiter("10/s", clock=clock), bulkhead=Bulkhead(2))
    with pipeline.guard():
        pass
    with pytest.raises(KeyError), pipeline.guard():
        raise KeyError("x")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen), pipeline.guard():
        pass


async def test_aguard_records_failures_and_local_rejections(clock: FakeClock) -> None:
    breaker = CircuitBreaker("g", consecutive_failures=1, clock=clock)
    limiter = RateLimiter("1/minute", burst=1, max_wait=0.0, clock=clock)
    pipeline = Pipeline("g", breaker=breaker, limiter=limiter, bulkhead=Bulkhead(1), clock=clock)
    async with pipeline.aguard():
        pass
    with pytest.raises(RateLimited):
        async with pipeline.aguard():
            pass
    clock.advance(60)
    with pytest.raises(KeyError):
        async with pipeline.aguard():
            raise KeyError("x")
    assert breaker.state == "open"


def test_guard_refuses_strategies_a_block_cannot_apply() -> None:
    pipeline = Pipeline("g", retry=Retry(on=ConnectionError), timeout=Timeout(1.0))
    with (
        pytest.raises(ValidationError, match="has retry, timeout, which a with-block cannot apply"),
        pipeline.guard(),
    ):
        pass


def test_hedging_needs_async() -> None:
    pipeline = Pipeline("h", hedge=Hedge(delay=0.1))
    with pytest.raises(ValidationError, match="hedges, which needs async"):
        pipeline.call(len, "x")

    def sync() -> None: ...

    with pytest.raises(ValidationError, match="is sync"):
        pipeline(sync)


def test_replace_shares_the_untouched_strategies() -> None:
    breaker = CircuitBreaker("r")
    pipeline = Pipeline("r", breaker=breaker)
    with_fallback = pipeline.replace(fallback=Fallback(on=CircuitOpen, value=0))
    assert with_fallback.breaker is breaker
    assert pipeline.fallback is None
    assert with_fallback.replace(breaker=None).breaker is None
    with pytest.raises(ValidationError, match="unknown retries"):
        pipeline.replace(retries=3)


def test_a_plain_pipeline_calls_straight_through_and_validates_names() -> None:
    assert Pipeline().call(divmod, 7, 2) == (3, 1)
    with pytest.raises(ValidationError, match="needs a function"):
        Pipeline("x")(3)  # type: ignore[arg-type]
    assert repr(Pipeline("x")) == "Pipeline('x')"
    with pytest.raises(ValidationError, match="limiter_key"):
        Pipeline("x", limiter_key="a b")


class Client:
    pipeline = Pipeline("client", retry=Retry(on=ConnectionError, backoff=NO_WAIT))

    def __init__(self) -> None:
        self.calls = 0

    @pipeline
    def get(self, path: str, *, timeout: float = 1.0) -> str:
        """Fetch a path."""
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError
        return path

    @pipeline
    async def aget(self, path: str) -> str:
        return path


async def test_decorated_methods_keep_their_signature_and_bind_self() -> None:
    client = Client()
    assert client.get("/a") == "/a"
    assert client.calls == 2
    assert await client.aget("/b") == "/b"
    assert str(inspect.signature(Client.get)) == "(self, path: 'str', *, timeout: 'float' = 1.0) -> 'str'"
    assert Client.get.__doc__ == "Fetch a path."
    assert inspect.iscoroutinefunction(Client.aget)


def test_fallback_without_retry_sync_and_async() -> None:
    pipeline = Pipeline("f", fallback=Fallback(on=ZeroDivisionError, value=0), breaker=CircuitBreaker("f"))
    assert pipeline.call(lambda: 1 / 0) == 0

    async def boom() -> float:
        return 1 / 0

    assert asyncio.run(pipeline.acall(boom)) == 0


async def test_async_retry_without_fallback_and_plain_async() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError
        return "ok"

    assert await Pipeline("r", retry=Retry(on=ConnectionError, backoff=NO_WAIT)).acall(flaky) == "ok"
    assert await Pipeline("plain").acall(_aok) == "ok"


async def test_async_local_rejections_release_and_cancellation_is_not_a_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("a", consecutive_failures=1, clock=clock)
    bulkhead = Bulkhead(1)
    pipeline = Pipeline("a", breaker=breaker, bulkhead=bulkhead, clock=clock)
    bulkhead.acquire()
    with pytest.raises(BulkheadFull):
        await pipeline.acall(_aok)
    with pytest.raises(BulkheadFull):
        async with pipeline.aguard():
            pass
    with pytest.raises(BulkheadFull), pipeline.guard():
        pass
    bulkhead.release()

    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await pipeline.acall(interrupted)
    with pytest.raises(KeyboardInterrupt), pipeline.guard():
        raise KeyboardInterrupt
    assert breaker.state == "closed"  # an interrupted call did not fail


async def test_a_redis_breaker_releases_on_local_rejection_and_cancellation(redis_url: str) -> None:
    state = RedisState(redis_url, prefix=f"t{uuid.uuid4().hex}", metrics=MetricsRegistry())
    breaker = CircuitBreaker("r", consecutive_failures=1, store=state)
    bulkhead = Bulkhead(1)
    pipeline = Pipeline("r", breaker=breaker, bulkhead=bulkhead)
    try:
        bulkhead.acquire()
        with pytest.raises(BulkheadFull):
            await pipeline.acall(_aok)
        bulkhead.release()

        async def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await pipeline.acall(interrupted)
        assert (await breaker.asnapshot()).state == "closed"
    finally:
        await state.aclose()
