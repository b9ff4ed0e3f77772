"""Hedge: when a call is slow, start another attempt beside it and take whichever succeeds first.

Tail latency is often one slow replica or one lost packet, not a slow service; a second request after
``delay`` (about the p95 latency) usually answers sooner. The first attempt to *succeed* wins and every
other attempt is cancelled and awaited, so nothing leaks. A failed attempt does not start a new one
(hedging is for latency; compose with Retry for failures): while other attempts run they are waited
for, and when every attempt started has failed, the *first* failure is raised (it is usually the
primary's, and the one the caller expects to see).

Async only: attempts run side by side as asyncio tasks and the losers are cancelled, which a blocking sync
function cannot be.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["Hedge"]

P = ParamSpec("P")
R = TypeVar("R")

_NEEDS_ASYNC = (
    "Hedge needs an async function: it runs attempts side by side as asyncio tasks and cancels the "
    "losers, which cannot be done to a blocking sync call; make {what} 'async def' and use "
    "'await hedge.acall(fn, ...)'"
)


def _check_delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"delay must be a finite number of seconds >= 0 (how long an attempt runs before another "
            f"starts; about the call's p95 latency), got {value!r}; e.g. 0.2",
            field="delay",
        )
    return float(value)


def _check_max_hedges(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            f"max_hedges must be an integer >= 1 (extra attempts after the first), got {value!r}; e.g. 1",
            field="max_hedges",
        )
    return value


class Hedge:
    """Start up to ``max_hedges`` extra attempts, one every ``delay`` s, while no attempt has succeeded.

    ``delay`` runs on the injected clock (``clock.asleep``), so a FakeClock drives it in tests.
    """

    __slots__ = (
        "_delay",
        "_failed",
        "_hedge_won",
        "_hedged",
        "_max_hedges",
        "_now",
        "_primary_won",
        "_system",
        "clock",
        "name",
        "telemetry",
    )

    def __init__(
        self,
        delay: float,
        *,
        max_hedges: int = 1,
        name: str = "default",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._delay = _check_delay(delay)
        self._max_hedges = _check_max_hedges(max_hedges)
        self.name = check_name(name)
        self.clock = clock
        self._system = isinstance(clock, SystemClock)
        self._now = time.monotonic if self._system else clock.monotonic
        self.telemetry = Telemetry(
            "hedge",
            self.name,
            ("primary_won", "hedge_won", "hedged", "failed"),
            metrics=metrics,
            events=events,
        )
        self._primary_won = self.telemetry.tally("primary_won")
        self._hedge_won = self.telemetry.tally("hedge_won")
        self._hedged = self.telemetry.tally("hedged")
        self._failed = self.telemetry.tally("failed")

    def __repr__(self) -> str:
        return f"Hedge({self._delay}, max_hedges={self._max_hedges}, name={self.name!r})"

    @property
    def delay(self) -> float:
        return self._delay

    @property
    def max_hedges(self) -> int:
        return self._max_hedges

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> NoReturn:
        """Always raises ValidationError: hedging needs async (see :meth:`acall`)."""
        raise ValidationError(_NEEDS_ASYNC.format(what=_describe(fn)), field="fn")

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``, hedged; the first success is returned."""
        attempts: list[asyncio.Future[R]] = [asyncio.ensure_future(fn(*args, **kwargs))]
        pending = set(attempts)
        errors: list[BaseException] = []
        next_hedge = self._now() + self._delay
        try:
            while True:
                hedges = len(attempts) - 1
                remaining = max(next_hedge - self._now(), 0.0) if hedges < self._max_hedges else None
                done, expired = await self._wait(pending, remaining)
                for attempt in sorted(done, key=attempts.index):
                    pending.discard(attempt)
                    error = _error_of(attempt)
                    if error is None:
                        result: R = attempt.result()
                        self._won(attempts.index(attempt), len(attempts))
                        return result
                    errors.append(error)
                if not pending and not expired:
                    self._failed()
                    raise errors[0]
                if expired:
                    attempts.append(asyncio.ensure_future(fn(*args, **kwargs)))
                    pending.add(attempts[-1])
                    next_hedge = self._now() + self._delay
                    self._hedged()
                    self.telemetry.emit("started", attempt=len(attempts) - 1, delay=self._delay)
        finally:
            if pending:
                await _cancel(pending)

    async def _wait(
        self, pending: set[asyncio.Future[R]], seconds: float | None
    ) -> tuple[set[asyncio.Future[Any]], bool]:
        """Wait until an attempt ends or ``seconds`` pass: the ended attempts, and whether time ran out."""
        if seconds is None or self._system:
            done, _ = await asyncio.wait(pending, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            return set(done), not done
        timer: asyncio.Future[Any] = asyncio.ensure_future(self.clock.asleep(seconds))
        waiting: set[asyncio.Future[Any]] = {*pending, timer}
        try:
            ended, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not timer.done():
                await _cancel({timer})
        expired = timer in ended
        ended.discard(timer)
        return ended, expired and not ended

    def _won(self, index: int, started: int) -> None:
        if index == 0:
            self._primary_won()
        else:
            self._hedge_won()
        if started > 1:
            self.telemetry.emit(
                "won", attempt=index, attempts=started, winner="primary" if index == 0 else "hedge"
            )

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate an ``async def`` function or method; a sync one raises ValidationError here."""
        target = fn
        if not inspect.iscoroutinefunction(fn):
            raise ValidationError(_NEEDS_ASYNC.format(what=_describe(fn)), field="fn")
        return wrap(target, self.call, self.acall)


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _error_of(attempt: asyncio.Future[Any]) -> BaseException | None:
    if attempt.cancelled():  # cancelled by someone else: a failure of that attempt
        return asyncio.CancelledError(f"hedge attempt {attempt!r} was cancelled")
    return attempt.exception()


async def _cancel(futures: set[asyncio.Future[Any]]) -> None:
    """Cancel ``futures`` and wait until they have ended, retrieving their errors so none is reported."""
    for future in futures:
        future.cancel()
    await asyncio.wait(futures)
    for future in futures:
        if not future.cancelled():
            future.exception()
