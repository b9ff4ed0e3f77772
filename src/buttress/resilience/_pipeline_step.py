"""A pipeline's fast paths: a retry's first attempt run inline, and no coroutine when nothing has to wait.

Sync (:func:`runner`): the first attempt is made here, in one frame with the breaker and the limiter, and
handed to the Retry (``resume``) only if it failed or its result asks for another attempt.

Async (:func:`stepper`): an ``async def`` costs a coroutine per layer, and the retry deadline's
``asyncio.timeout`` about 1.2 us a call. When every strategy answers without I/O (memory stores) and the
function finishes in its first step (an answer from memory, a cache hit), none of that is needed:
:func:`stepper` returns a function that takes the breaker's permit and the limiter's token with their
``*_fast`` methods, runs the function's coroutine up to its first suspension (``_deadline.first_step``),
records the outcome and returns the result, all in plain calls. Everything else goes on as an awaitable,
wrapped in :class:`~buttress.resilience._decorate.Later`:

- a strategy that needs I/O or a wait: the pipeline's ordinary async path, from the start (a permit already
  taken is given back first, with the breaker's async ``arelease``);
- the function suspended: the rest is awaited under the retry deadline, then recorded (``afinish``);
- it raised, or the retry wants another attempt: recorded, then handed to the Retry (``aresume``).

So the order of the strategies, the deadline (counted from the call's start) and every count are exactly
the ordinary path's. Both serve pipelines made of a retry (without a budget) and, optionally, a breaker and
a limiter; any other strategy in the pipeline means the ordinary paths.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from buttress.clock import SystemClock
from buttress.resilience._deadline import Rest, as_coroutine, finish
from buttress.resilience._decorate import Later

if TYPE_CHECKING:
    from buttress.resilience._breaker import CircuitBreaker, Permit
    from buttress.resilience._limiter import RateLimiter
    from buttress.resilience._retry import Retry

__all__ = ["arecord_failure", "record_failure", "runner", "stepper"]

Step = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
Attempt = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Awaitable[Any]]


def record_failure(breaker: CircuitBreaker, permit: Permit, exc: BaseException, duration: float) -> None:
    """Tell the breaker a call under ``permit`` raised ``exc`` (a release if it was interrupted)."""
    if isinstance(exc, Exception):
        breaker.record_failure(permit, exc, duration)
    else:  # cancellation, KeyboardInterrupt, SystemExit: the call did not finish, it did not fail
        breaker.release(permit)


async def arecord_failure(
    breaker: CircuitBreaker, permit: Permit, exc: BaseException, duration: float
) -> None:
    """:func:`record_failure` for async callers."""
    if isinstance(exc, Exception):
        await breaker.arecord_failure(permit, exc, duration)
    else:
        await breaker.arelease(permit)


def _clocks(retry: Retry, now: Callable[[], float]) -> tuple[Callable[[], float], bool]:
    """The retry's clock (its deadline and stats) and whether it is the pipeline's (the breaker's timing)."""
    retry_now = time.monotonic if isinstance(retry.clock, SystemClock) else retry.clock.monotonic
    return retry_now, retry_now is now


def runner(  # noqa: PLR0917 - the strategies and the attempt the retry repeats
    retry: Retry,
    breaker: CircuitBreaker | None,
    limiter: RateLimiter | None,
    limiter_key: str,
    now: Callable[[], float],
    attempt: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any],
) -> Step:
    """The sync fast path: ``retry.call(attempt, ...)`` with its first attempt made inline. ``now`` is the
    pipeline's clock, which times the call for the breaker."""
    retry_now, same_clock = _clocks(retry, now)

    def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        permit = None
        try:
            if breaker is not None:
                permit = breaker.acquire()
            waited = limiter.acquire(limiter_key) if limiter is not None else 0.0
        except BaseException as exc:  # noqa: BLE001 - refused: nothing was called; the retry judges it
            if permit is not None:
                breaker.release(permit)  # type: ignore[union-attr]
            return retry.resume(attempt, (fn, args, kwargs), {}, start=retry_now(), error=exc, result=None)
        # one clock read serves both: the breaker times the call, the retry's deadline counts the wait too
        begun = now()
        start = (begun if same_clock else retry_now()) - waited
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - recorded, then the retry judges it
            if permit is not None:
                record_failure(breaker, permit, exc, now() - begun)  # type: ignore[arg-type]
            return retry.resume(attempt, (fn, args, kwargs), {}, start=start, error=exc, result=None)
        if permit is not None:
            breaker.record_success(permit, now() - begun)  # type: ignore[union-attr]
        if retry.succeeded(result, start):
            return result
        return retry.resume(attempt, (fn, args, kwargs), {}, start=start, error=None, result=result)

    return run


class _Attempt:
    """A first attempt the async fast path could not finish at once: what finishing it needs."""

    __slots__ = ("args", "begun", "fn", "kwargs", "permit", "start")

    def __init__(  # noqa: PLR0917 - the whole state of the attempt, set once
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        begun: float,
        permit: Permit | None,
    ) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.start = start  # on the retry's clock: its deadline and stats
        self.begun = begun  # on the pipeline's clock: the breaker's timing
        self.permit = permit  # None: refused before the call


def stepper(  # noqa: PLR0915, PLR0917 - the strategies and the paths to fall back on; flat on purpose
    retry: Retry,
    breaker: CircuitBreaker | None,
    limiter: RateLimiter | None,
    limiter_key: str,
    now: Callable[[], float],
    ordinary: Attempt,
    attempt: Attempt,
) -> Step:
    """The async fast path of a pipeline of these strategies; ``ordinary`` is its whole async path (retry
    included) and ``attempt`` one async attempt (what a retry repeats). ``now`` is the pipeline's clock."""
    retry_now, same_clock = _clocks(retry, now)

    async def afinish(
        run: _Attempt, result: Any, error: BaseException | None, *, expired: bool = False
    ) -> Any:
        """Record an attempt that ended (or was refused: no permit) and let the retry judge it."""
        permit = run.permit
        if breaker is not None and permit is not None:
            duration = now() - run.begun
            if error is None:
                if not breaker.record_success_fast(permit, duration):
                    await breaker.arecord_success(permit, duration)
            else:
                await arecord_failure(breaker, permit, error, duration)
        if error is None and retry.succeeded(result, run.start):
            return result
        call = (run.fn, run.args, run.kwargs)
        return await retry.aresume(
            attempt, call, {}, start=run.start, error=error, result=result, expired=expired
        )

    async def areleased(
        permit: Permit, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The limiter must wait or ask Redis: give the permit back (the store's async way), then take the
        ordinary path from the start."""
        await breaker.arelease(permit)  # type: ignore[union-attr]
        return await ordinary(fn, args, kwargs)

    async def arest(run: _Attempt, coro: Any, pending: Any) -> Any:
        """The function suspended: await the rest of it under the retry deadline, then finish."""
        expired = False
        try:
            if retry.deadline is None:
                result, error = await Rest(coro, pending), None
            else:
                left = retry.deadline - (retry_now() - run.start)
                result, error, expired = await finish(coro, pending, left)
        except BaseException as exc:  # noqa: BLE001 - recorded and judged in afinish
            result, error = None, exc
        return await afinish(run, result, error, expired=expired)

    def step(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # noqa: PLR0911 - one return per way out, flat on purpose
        permit = None
        if breaker is not None:
            try:
                permit = breaker.acquire_fast()
            except BaseException as exc:  # noqa: BLE001 - refused (CircuitOpen): the retry judges it
                start = retry_now()
                return Later(afinish(_Attempt(fn, args, kwargs, start, start, None), None, exc))
            if permit is None:  # the store needs I/O
                return Later(ordinary(fn, args, kwargs))
        if limiter is not None and not limiter.acquire_fast(limiter_key):  # I/O or a wait
            if permit is not None:
                return Later(areleased(permit, fn, args, kwargs))
            return Later(ordinary(fn, args, kwargs))
        begun = now()  # after the decisions, which never wait here: one clock read serves the retry too
        start = begun if same_clock else retry_now()
        try:  # _deadline.first_step, inlined: one frame less on the hot path
            coro = fn(*args, **kwargs)
            if type(coro) is not CoroutineType:
                coro = as_coroutine(coro)
            try:
                pending = coro.send(None)
            except StopIteration as stop:  # finished without suspending: the common case
                result = stop.value
            else:
                return Later(arest(_Attempt(fn, args, kwargs, start, begun, permit), coro, pending))
        except BaseException as exc:  # noqa: BLE001 - recorded and judged in afinish
            return Later(afinish(_Attempt(fn, args, kwargs, start, begun, permit), None, exc))
        # a permit handed out without I/O may still need I/O to record (a slow call on a Redis breaker)
        if permit is not None and not breaker.record_success_fast(permit, now() - begun):  # type: ignore[union-attr]
            return Later(afinish(_Attempt(fn, args, kwargs, start, begun, permit), result, None))
        if retry.succeeded(result, start):
            return result
        return Later(retry.aresume(attempt, (fn, args, kwargs), {}, start=start, error=None, result=result))

    return step
