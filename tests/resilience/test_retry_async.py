"""Retry, async side: the same rules, plus attempts cancelled in flight at the deadline."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import DeadlineExceeded, RetryExhausted
from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._backoff import Backoff
from buttress.resilience._retry import Retry, retry_stats
from tests.resilience.test_retry import CountingBudget, Throttled


class AsyncFlaky:
    """Fails with ``errors`` in order, then returns ``value``; can hang on chosen attempts."""

    def __init__(self, *errors: BaseException, value: object = "ok", hang_on: tuple[int, ...] = ()) -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0
        self.hang_on = hang_on

    async def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.calls in self.hang_on:
            await asyncio.sleep(10)
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        return self.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    with EventBus() as event_bus:
        yield event_bus


@pytest.fixture
def make(clock: FakeClock, bus: EventBus) -> Callable[..., Retry]:
    def build(**kwargs: Any) -> Retry:
        kwargs.setdefault("on", ConnectionError)
        kwargs.setdefault("backoff", Backoff.constant(1.0))
        kwargs.setdefault("clock", clock)
        return Retry(metrics=MetricsRegistry(), events=bus, **kwargs)

    return build


async def test_acall_retries_until_success(make: Callable[..., Retry], clock: FakeClock) -> None:
    fn = AsyncFlaky(ConnectionError(), ConnectionError(), value=7)
    assert await make(attempts=3).acall(fn, 1, key="k") == 7
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 1.0]


async def test_acall_gives_up_with_retry_exhausted(make: Callable[..., Retry]) -> None:
    errors = [ConnectionError(f"e{i}") for i in range(3)]
    with pytest.raises(RetryExhausted) as caught:
        await make(attempts=3).acall(AsyncFlaky(*errors))
    assert caught.value.attempts == 3
    assert caught.value.last_error is errors[2]
    assert caught.value.__cause__ is errors[2]


async def test_acall_propagates_a_non_matching_error_at_once(make: Callable[..., Retry]) -> None:
    fn = AsyncFlaky(KeyError("k"))
    with pytest.raises(KeyError):
        await make().acall(fn)
    assert fn.calls == 1


async def test_acall_retry_if_result(make: Callable[..., Retry]) -> None:
    results = iter([None, "ready"])

    async def poll() -> str | None:
        return next(results)

    assert await make(retry_if_result=lambda r: r is None).acall(poll) == "ready"
    with pytest.raises(RetryExhausted) as caught:
        await make(retry_if_result=lambda r: True, attempts=2).acall(poll_none)
    assert caught.value.context["result"] is None


async def poll_none() -> None:
    return None


async def test_acall_honours_retry_after(make: Callable[..., Retry], clock: FakeClock) -> None:
    await make(backoff=Backoff.constant(0.1), deadline=None).acall(AsyncFlaky(Throttled(2.5)))
    assert clock.sleeps == [2.5]


async def test_acall_gives_up_before_a_sleep_that_would_cross_the_deadline(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        await make(backoff=Backoff.constant(3.0), deadline=5.0, attempts=10).acall(
            AsyncFlaky(*[ConnectionError()] * 10)
        )
    assert clock.sleeps == [3.0]
    assert caught.value.context["attempts"] == 2


async def test_a_first_attempt_in_flight_is_cancelled_at_the_deadline() -> None:
    fn = AsyncFlaky(hang_on=(1,))
    retry = Retry(on=ConnectionError, deadline=0.05, metrics=MetricsRegistry(), events=EventBus())
    start = time.monotonic()
    with retry_stats() as stats, pytest.raises(DeadlineExceeded) as caught:
        await retry.acall(fn)
    elapsed = time.monotonic() - start
    assert elapsed < 0.05 + 0.05
    assert fn.calls == 1
    error = caught.value
    assert isinstance(error.__cause__, asyncio.CancelledError)
    assert error.context["attempts"] == 1
    assert "attempt 1 was cancelled at the deadline" in str(error)
    assert stats[0].outcome == "deadline"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_retry_in_flight_is_cancelled_at_the_deadline() -> None:
    fn = AsyncFlaky(ConnectionError(), hang_on=(2,))
    retry = Retry(
        on=ConnectionError,
        deadline=0.1,
        backoff=Backoff.constant(0.01),
        metrics=MetricsRegistry(),
        events=EventBus(),
    )
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        await retry.acall(fn)
    assert time.monotonic() - start < 0.1 + 0.05
    assert fn.calls == 2
    assert caught.value.context["attempts"] == 2
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_the_callers_own_cancellation_is_never_retried_nor_swallowed() -> None:
    fn = AsyncFlaky(hang_on=(1,))
    retry = Retry(on=BaseException, deadline=30.0, metrics=MetricsRegistry(), events=EventBus())
    task = asyncio.create_task(retry.acall(fn))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fn.calls == 1


async def test_the_callers_cancellation_without_a_deadline_propagates() -> None:
    fn = AsyncFlaky(hang_on=(1,))
    retry = Retry(on=Exception, deadline=None, metrics=MetricsRegistry(), events=EventBus())
    task = asyncio.create_task(retry.acall(fn))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_attempt_that_swallows_the_deadline_cancel_returns_its_result() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "late"
        return "never"  # pragma: no cover

    retry = Retry(on=ConnectionError, deadline=0.02, metrics=MetricsRegistry(), events=EventBus())
    assert await retry.acall(stubborn) == "late"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_an_attempt_that_turns_the_deadline_cancel_into_an_error_gives_up_on_the_deadline() -> None:
    async def converts() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ConnectionError("interrupted") from None

    retry = Retry(on=ConnectionError, deadline=0.02, metrics=MetricsRegistry(), events=EventBus())
    with pytest.raises(DeadlineExceeded) as caught:
        await retry.acall(converts)
    assert str(caught.value.__cause__) == "interrupted"


async def test_a_timeout_error_raised_by_the_function_is_an_ordinary_failure(
    make: Callable[..., Retry],
) -> None:
    fn = AsyncFlaky(TimeoutError("upstream timed out"))
    assert await make(on=TimeoutError).acall(fn) == "ok"
    assert fn.calls == 2


async def test_concurrent_first_attempts_are_each_cut_at_their_own_deadline() -> None:
    retry = Retry(on=ConnectionError, deadline=0.1, metrics=MetricsRegistry(), events=EventBus())

    async def attempt(i: int) -> str:
        await asyncio.sleep(0.01 * (i % 3))
        if i % 2:
            await asyncio.sleep(10)
        return f"ok{i}"

    start = time.monotonic()
    results = await asyncio.gather(*(retry.acall(attempt, i) for i in range(20)), return_exceptions=True)
    assert time.monotonic() - start < 0.1 + 0.02 * 2 + 0.1
    for i, result in enumerate(results):
        if i % 2:
            assert isinstance(result, DeadlineExceeded)
        else:
            assert result == f"ok{i}"


class TimerLoop(asyncio.SelectorEventLoop):
    """A real event loop that keeps every timer handle it arms (``asyncio.timeout`` arms one)."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[asyncio.TimerHandle] = []

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, context=context)
        self.timers.append(handle)
        return handle


def run_in(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def answer_at_once() -> str:
    return "ok"


def test_a_first_attempt_that_never_suspends_arms_no_timer() -> None:
    retry = Retry(on=ConnectionError, deadline=30.0, metrics=MetricsRegistry(), events=EventBus())
    loop = TimerLoop()

    async def many() -> list[str]:
        return [await retry.acall(answer_at_once) for _ in range(1000)]

    assert run_in(loop, many()) == ["ok"] * 1000
    assert loop.timers == []


def test_an_attempt_that_suspends_arms_one_timer_and_leaves_none_behind() -> None:
    retry = Retry(on=ConnectionError, deadline=30.0, metrics=MetricsRegistry(), events=EventBus())
    loop = TimerLoop()
    assert run_in(loop, retry.acall(AsyncFlaky())) == "ok"
    assert len(loop.timers) == 1
    assert loop.timers[0].cancelled()


async def test_the_deadline_counts_the_first_steps_own_time() -> None:
    clock = FakeClock()

    async def slow_start() -> str:
        clock.advance(29.95)  # 29.95 s of work before the first suspension
        await asyncio.sleep(10)
        return "never"  # pragma: no cover

    retry = Retry(
        on=ConnectionError, deadline=30.0, clock=clock, metrics=MetricsRegistry(), events=EventBus()
    )
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        await retry.acall(slow_start)
    assert time.monotonic() - start < 1.0  # cut 0.05 s after it suspended, not 30 s
    assert isinstance(caught.value.__cause__, asyncio.CancelledError)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_an_attempt_that_suspends_gets_what_it_waited_for() -> None:
    retry = Retry(on=ConnectionError, deadline=30.0, metrics=MetricsRegistry(), events=EventBus())
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def waits() -> str:
        return await future + "!"

    task = asyncio.create_task(retry.acall(waits))
    await asyncio.sleep(0)
    future.set_result("value")
    assert await task == "value!"

    failing: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def waits_for_an_error() -> str:
        return await failing

    task = asyncio.create_task(retry.acall(waits_for_an_error))
    await asyncio.sleep(0)
    failing.set_exception(ValueError("not retried"))
    with pytest.raises(ValueError, match="not retried"):
        await task


async def test_an_awaitable_that_is_not_a_coroutine_is_cut_at_the_deadline_too() -> None:
    retry = Retry(on=ConnectionError, deadline=0.02, metrics=MetricsRegistry(), events=EventBus())
    loop = asyncio.get_running_loop()
    assert await retry.acall(lambda: asyncio.sleep(0, "slept")) == "slept"
    with pytest.raises(DeadlineExceeded):
        await retry.acall(loop.create_future)  # a Future nobody completes


async def test_closing_a_call_suspended_in_its_attempt_closes_the_attempt() -> None:
    retry = Retry(on=ConnectionError, deadline=30.0, metrics=MetricsRegistry(), events=EventBus())
    closed: list[bool] = []

    async def holds() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            closed.append(True)

    call = retry.acall(holds)
    call.send(None)  # runs up to the first suspension, in this task
    call.close()
    assert closed == [True]


def test_one_retry_serves_several_event_loops() -> None:
    retry = Retry(on=ConnectionError, deadline=0.05, metrics=MetricsRegistry(), events=EventBus())

    async def once() -> None:
        assert await retry.acall(AsyncFlaky()) == "ok"
        with pytest.raises(DeadlineExceeded):
            await retry.acall(AsyncFlaky(hang_on=(1,)))

    asyncio.run(once())
    asyncio.run(once())


async def test_acall_records_calls_and_spends_the_budget(make: Callable[..., Retry]) -> None:
    budget = CountingBudget(allow=1)
    retry = make(budget=budget, attempts=5)
    with pytest.raises(RetryExhausted) as caught:
        await retry.acall(AsyncFlaky(*[ConnectionError()] * 5))
    assert budget.calls == 1
    assert budget.asked == 2
    assert caught.value.context["reason"] == "budget"


async def test_decorator_on_async_function_and_method_keeps_the_signature(make: Callable[..., Retry]) -> None:
    retry = make()

    @retry
    async def fetch(url: str, *, retries_seen: list[int]) -> str:
        """Fetch."""
        retries_seen.append(1)
        if len(retries_seen) == 1:
            raise ConnectionError
        return url

    seen: list[int] = []
    assert inspect.iscoroutinefunction(fetch)
    assert str(inspect.signature(fetch)) == "(url: 'str', *, retries_seen: 'list[int]') -> 'str'"
    assert await fetch("u", retries_seen=seen) == "u"
    assert seen == [1, 1]

    class Client:
        @retry
        async def get(self, value: int) -> int:
            return value * 2

    assert await Client().get(21) == 42


async def test_retrying_events_name_a_partial_by_its_function(
    make: Callable[..., Retry], bus: EventBus
) -> None:
    received: list[Event] = []
    bus.subscribe("resilience.retry.retrying", received.append)
    fn = AsyncFlaky(ConnectionError())

    async def named(flaky: AsyncFlaky) -> object:
        return await flaky()

    await make().acall(functools.partial(named, fn))
    assert await bus.aflush()
    assert received[0].payload["function"].endswith("named")


async def test_a_later_attempt_is_cut_after_an_earlier_one_finished() -> None:
    retry = Retry(on=ConnectionError, deadline=0.1, metrics=MetricsRegistry(), events=EventBus())
    assert await retry.acall(AsyncFlaky()) == "ok"  # arms the timer for its own deadline, then finishes
    await asyncio.sleep(0.03)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await retry.acall(AsyncFlaky(hang_on=(1,)))  # the timer fires for the first, re-arms for this one
    assert 0.1 - 0.01 <= time.monotonic() - start < 0.1 + 0.05
