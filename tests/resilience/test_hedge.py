"""Hedge: extra attempts after a delay, first success wins, losers cancelled and awaited."""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.resilience._hedge import Hedge
from tests.resilience._observed import Observed

BOUND = 5.0  # upper bound for waits that should end much sooner; never a timing assertion


class Attempts:
    """An async function whose attempts are scripted: each waits for its gate, then returns or raises."""

    def __init__(self, count: int) -> None:
        self.started = 0
        self.gates = [asyncio.Event() for _ in range(count)]
        self.outcomes: list[object] = [f"answer-{n}" for n in range(count)]
        self.cancelled: list[int] = []

    async def __call__(self, *args: object) -> object:
        number = self.started
        self.started += 1
        try:
            await self.gates[number].wait()
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise
        outcome = self.outcomes[number]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def finish(self, number: int, outcome: object = None) -> None:
        if outcome is not None:
            self.outcomes[number] = outcome
        self.gates[number].set()


async def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def fake_hedge(observed: Observed, delay: float = 0.2, **options: Any) -> tuple[Hedge, FakeClock]:
    clock = FakeClock(auto_advance=False)
    hedge = Hedge(
        delay, name="search", clock=clock, metrics=observed.registry, events=observed.bus, **options
    )
    return hedge, clock


async def next_hedge(clock: FakeClock, delay: float) -> None:
    """Wait until the hedge timer is parked on the fake clock, then move time past it."""
    await until(lambda: clock.sleepers == 1)
    clock.advance(delay)


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "text"),
    [
        ({"delay": -0.1}, "delay", r"delay must be a finite number of seconds >= 0 .*e\.g\. 0\.2"),
        ({"delay": float("nan")}, "delay", "got nan"),
        ({"delay": True}, "delay", "got True"),
        ({"delay": 0.1, "max_hedges": 0}, "max_hedges", r"max_hedges must be an integer >= 1 .*e\.g\. 1"),
        ({"delay": 0.1, "max_hedges": 1.5}, "max_hedges", "got 1.5"),
        ({"delay": 0.1, "name": ""}, "name", "name must be"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(options: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError, match=text) as caught:
        Hedge(**options)
    assert caught.value.field == field


def test_settings_and_repr() -> None:
    hedge = Hedge(0.25, max_hedges=2, name="search")
    assert (hedge.delay, hedge.max_hedges) == (0.25, 2)
    assert repr(hedge) == "Hedge(0.25, max_hedges=2, name='search')"


# -- racing -------------------------------------------------------------------------------------------


async def test_slow_primary_loses_to_a_fast_hedge_and_is_cancelled(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    attempts.finish(1)  # the hedge answers as soon as it starts
    call = asyncio.create_task(hedge.acall(attempts, "query"))
    await next_hedge(clock, 0.2)
    assert await call == "answer-1"
    assert attempts.started == 2
    assert attempts.cancelled == [0]  # the primary saw CancelledError before acall returned
    assert observed.calls("hedge") == {"hedged": 1.0, "hedge_won": 1.0}
    assert observed.events() == [
        ("resilience.hedge.started", {"key": "search", "attempt": 1, "delay": 0.2}),
        ("resilience.hedge.won", {"key": "search", "attempt": 1, "attempts": 2, "winner": "hedge"}),
    ]


async def test_fast_primary_starts_no_hedge(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    call = asyncio.create_task(hedge.acall(attempts))
    await until(lambda: clock.sleepers == 1)
    attempts.finish(0)
    assert await call == "answer-0"
    assert attempts.started == 1
    assert clock.sleepers == 0  # the hedge timer was cancelled, not left parked
    assert observed.calls("hedge") == {"primary_won": 1.0}
    assert observed.events() == []


async def test_primary_that_wins_after_a_hedge_started_cancels_the_hedge(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.2)
    await until(lambda: attempts.started == 2)
    attempts.finish(0)
    assert await call == "answer-0"
    assert attempts.cancelled == [1]
    assert observed.calls("hedge") == {"hedged": 1.0, "primary_won": 1.0}
    assert observed.events()[-1] == (
        "resilience.hedge.won",
        {"key": "search", "attempt": 0, "attempts": 2, "winner": "primary"},
    )


async def test_max_hedges_is_respected_with_one_delay_between_starts(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed, 0.1, max_hedges=2)
    attempts = Attempts(3)
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.1)
    await until(lambda: attempts.started == 2)
    await next_hedge(clock, 0.1)
    await until(lambda: attempts.started == 3)
    clock.advance(10)  # no further timer: max_hedges reached
    for _ in range(5):
        await asyncio.sleep(0)
    assert attempts.started == 3
    assert clock.sleepers == 0
    assert clock.sleeps == [pytest.approx(0.1), pytest.approx(0.1)]
    attempts.finish(2)
    assert await call == "answer-2"
    assert sorted(attempts.cancelled) == [0, 1]
    assert hedge.telemetry.counts() == {"primary_won": 0, "hedge_won": 1, "hedged": 2, "failed": 0}


async def test_primary_failing_before_the_delay_raises_without_hedging(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    error = ConnectionError("refused")
    call = asyncio.create_task(hedge.acall(attempts))
    await until(lambda: clock.sleepers == 1)
    attempts.finish(0, error)
    with pytest.raises(ConnectionError) as caught:
        await call
    assert caught.value is error
    assert attempts.started == 1
    assert clock.sleepers == 0
    assert observed.calls("hedge") == {"failed": 1.0}


async def test_a_failed_attempt_waits_for_the_others(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.2)
    await until(lambda: attempts.started == 2)
    attempts.finish(0, ConnectionError("primary broke"))
    await asyncio.sleep(0)
    assert not call.done()
    attempts.finish(1)
    assert await call == "answer-1"
    assert observed.calls("hedge") == {"hedged": 1.0, "hedge_won": 1.0}


async def test_a_failure_before_the_delay_keeps_the_hedge_schedule(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed, 0.2, max_hedges=2)
    attempts = Attempts(3)
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.2)
    await until(lambda: attempts.started == 2)
    await until(lambda: clock.sleepers == 1)
    clock.advance(0.05)
    attempts.finish(0, ConnectionError("primary broke"))  # the second timer keeps its deadline
    await until(lambda: clock.sleepers == 1 and clock.sleeps[-1] == pytest.approx(0.15))
    clock.advance(0.16)
    await until(lambda: attempts.started == 3)
    attempts.finish(2)
    assert await call == "answer-2"


async def test_when_every_attempt_fails_the_first_failure_is_raised(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    first, second = TimeoutError("primary timed out"), ConnectionError("hedge refused")
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.2)
    await until(lambda: attempts.started == 2)
    attempts.finish(0, first)
    await asyncio.sleep(0)
    attempts.finish(1, second)
    with pytest.raises(TimeoutError) as caught:
        await call
    assert caught.value is first
    assert observed.calls("hedge") == {"hedged": 1.0, "failed": 1.0}


async def test_an_attempt_cancelled_by_someone_else_counts_as_failed(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    attempts.outcomes[0] = asyncio.CancelledError()  # the primary gives up on its own
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.2)
    await until(lambda: attempts.started == 2)
    attempts.finish(0)
    await asyncio.sleep(0)
    attempts.finish(1)
    assert await call == "answer-1"


async def test_cancelling_the_call_cancels_and_awaits_every_attempt(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(2)
    call = asyncio.create_task(hedge.acall(attempts))
    await next_hedge(clock, 0.2)
    await until(lambda: attempts.started == 2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(attempts.cancelled) == [0, 1]
    assert clock.sleepers == 0


async def test_cancelling_while_the_hedge_timer_runs_cancels_the_timer(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    attempts = Attempts(1)
    call = asyncio.create_task(hedge.acall(attempts))
    await until(lambda: clock.sleepers == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert attempts.cancelled == [0]
    assert clock.sleepers == 0


async def test_errors_raised_by_losers_while_cancelled_are_retrieved(observed: Observed) -> None:
    hedge, clock = fake_hedge(observed)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))

    async def fetch(slow: list[bool]) -> str:
        if slow.pop():
            try:
                await asyncio.sleep(BOUND)
            except asyncio.CancelledError:
                raise RuntimeError("cleanup failed") from None
        return "fast"

    call = asyncio.create_task(hedge.acall(fetch, [False, True]))
    await next_hedge(clock, 0.2)
    assert await call == "fast"
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert reported == []


async def test_auto_advancing_fake_clock_hedges_at_once(observed: Observed) -> None:
    hedge = Hedge(30, clock=FakeClock(), metrics=observed.registry, events=observed.bus)
    attempts = Attempts(2)
    attempts.finish(1)
    assert await hedge.acall(attempts) == "answer-1"


# -- real clock ---------------------------------------------------------------------------------------


async def test_real_delay_hedges_a_slow_primary(observed: Observed) -> None:
    hedge = Hedge(0.01, metrics=observed.registry, events=observed.bus)
    cancelled = asyncio.Event()
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await asyncio.sleep(BOUND)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return f"attempt-{calls}"

    started = time.monotonic()
    assert await hedge.acall(fetch) == "attempt-2"
    assert time.monotonic() - started < 1.0
    assert cancelled.is_set()


async def test_real_delay_with_a_fast_primary_starts_nothing(observed: Observed) -> None:
    hedge = Hedge(BOUND, metrics=observed.registry, events=observed.bus)
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert [await hedge.acall(fetch) for _ in range(3)] == [1, 2, 3]
    assert hedge.telemetry.counts()["primary_won"] == 3
    assert hedge.telemetry.counts()["hedged"] == 0


async def test_zero_delay_starts_every_attempt_at_once(observed: Observed) -> None:
    hedge = Hedge(0, max_hedges=3, metrics=observed.registry, events=observed.bus)
    attempts = Attempts(4)
    call = asyncio.create_task(hedge.acall(attempts))
    await until(lambda: attempts.started == 4)
    attempts.finish(3)
    assert await call == "answer-3"
    assert sorted(attempts.cancelled) == [0, 1, 2]


# -- sync refused, decorator --------------------------------------------------------------------------


def test_sync_call_is_refused_with_the_reason() -> None:
    hedge = Hedge(0.1)
    with pytest.raises(ValidationError, match="Hedge needs an async function") as caught:
        hedge.call(len, "abc")
    assert "cancels the losers" in str(caught.value)
    assert caught.value.field == "fn"


def test_decorating_a_sync_function_fails_at_decoration_time() -> None:
    hedge = Hedge(0.1)

    def lookup(key: str) -> str:
        return key

    with pytest.raises(ValidationError, match=r"make .*lookup 'async def'") as caught:
        hedge(lookup)
    assert caught.value.field == "fn"


async def test_decorator_keeps_signatures_for_functions_and_methods() -> None:
    hedge = Hedge(BOUND)

    @hedge
    async def fetch(key: str, *, upper: bool = False) -> str:
        """Fetch."""
        return key.upper() if upper else key

    class Client:
        @hedge
        async def get(self, key: str) -> str:
            return key * 2

    assert await fetch("a", upper=True) == "A"
    assert await Client().get("b") == "bb"
    assert inspect.signature(fetch) == inspect.signature(fetch.__wrapped__)  # type: ignore[attr-defined]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch."
    assert inspect.iscoroutinefunction(fetch)
    assert hedge.telemetry.counts()["primary_won"] == 2


async def test_awaitables_that_are_not_coroutines_are_accepted() -> None:
    hedge = Hedge(BOUND)
    loop = asyncio.get_running_loop()

    def ready() -> Awaitable[str]:
        future: asyncio.Future[str] = loop.create_future()
        future.set_result("done")
        return future

    assert await hedge.acall(ready) == "done"
