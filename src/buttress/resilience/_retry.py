"""Retry: bounded attempts, backoff with jitter, a total deadline, Retry-After, and a fleet retry budget.

Safe by default, where tenacity is not: ``on`` is required (no retry-everything default), attempts are
bounded (3) and so is the total time (a 30 s deadline from the first attempt, never overshot by a sleep).

- ``attempts`` counts every attempt: 3 means one call and at most two retries.
- A failure is retried when the exception matches ``on`` (types or a predicate) or the result matches
  ``retry_if_result``; any other exception propagates at once. Cancellation, ``KeyboardInterrupt``,
  ``SystemExit`` and ``GeneratorExit`` are never retried, whatever ``on`` says.
- The wait before retry ``k`` is ``backoff.delay(k, previous, rng)``. When the exception has a numeric
  ``retry_after`` (buttress ``RateLimited``/``CircuitOpen``, HTTP 429/503) the wait is at least that, but
  never more than ``backoff.max_delay``: a longer Retry-After is capped.
- The deadline counts from the first attempt. A retry whose wait would end at or after it is not made:
  the call gives up at once with :class:`~buttress.errors.DeadlineExceeded` instead of sleeping. Async
  attempts run under ``asyncio.timeout`` for the time left, so one in flight is cancelled at the
  deadline. A sync attempt cannot be interrupted from outside; the deadline is checked between attempts
  (wrap the call in the Timeout strategy for a hard per-attempt bound).
- Giving up after the last attempt or when the budget says no raises
  :class:`~buttress.errors.RetryExhausted` (``attempts``, ``last_error``, chained ``from`` it). When the
  last attempt returned a result that still matched ``retry_if_result``, ``last_error`` is None and the
  result is in ``context["result"]``: returning it would hide that every attempt was judged a failure.
- With a :class:`~buttress.resilience.RetryBudget`, each call records itself and each retry must take a
  token first, so an outage cannot multiply the traffic by ``attempts``.

``retry_stats()`` collects per-call statistics for the calls made inside it, in the current thread or
task only (a ContextVar), so concurrent calls never mix their numbers.
"""

from __future__ import annotations

import asyncio
import math
import random
import reprlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NoReturn, ParamSpec, Protocol, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import DeadlineExceeded, RetryExhausted, ValidationError
from buttress.resilience._backoff import Backoff
from buttress.resilience._deadline import NOT_DONE, finish, first_step
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["Retry", "RetryBudgetLike", "RetryStats", "retry_stats"]

P = ParamSpec("P")
R = TypeVar("R")

OUTCOMES: Final = ("success", "retry", "gave_up", "not_retryable", "deadline")
_SIGNALS: Final = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)
_DEFAULT_BACKOFF: Final = Backoff()
_ON_EXAMPLE: Final = "e.g. Retry(on=(ConnectionError, TimeoutError))"
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80


@dataclass(slots=True)
class RetryStats:
    """What one call through a Retry did: attempts made, waits, time from first attempt to the end."""

    attempts: int
    retries: int
    delays: list[float]
    elapsed: float
    outcome: str
    """``success``, ``gave_up`` (attempts used up), ``deadline``, ``not_retryable`` or ``budget``."""
    name: str = field(default="default")


_SINKS: ContextVar[tuple[list[RetryStats], ...]] = ContextVar("buttress_retry_stats", default=())


@contextmanager
def retry_stats() -> Iterator[list[RetryStats]]:
    """Collect a :class:`RetryStats` for every Retry call made inside the block, in this thread or task.

    Blocks nest (an outer block also sees the inner block's calls). Tasks started inside the block
    inherit it, as tasks inherit every ContextVar; threads do not.
    """
    collected: list[RetryStats] = []
    token = _SINKS.set((*_SINKS.get(), collected))
    try:
        yield collected
    finally:
        _SINKS.reset(token)


class RetryBudgetLike(Protocol):
    """What Retry needs from a budget (:class:`~buttress.resilience.RetryBudget` is the one we ship)."""

    def record_call(self) -> None: ...
    def try_spend(self) -> bool: ...
    async def arecord_call(self) -> None: ...
    async def atry_spend(self) -> bool: ...


def _check_on(
    on: object,
) -> tuple[tuple[type[BaseException], ...], Callable[[BaseException], bool] | None]:
    if isinstance(on, type):
        if issubclass(on, BaseException):
            return (on,), None
    elif isinstance(on, tuple):
        if on and all(isinstance(t, type) and issubclass(t, BaseException) for t in on):
            return on, None
    elif callable(on):
        return (), on
    raise ValidationError(
        "on must be an exception type, a non-empty tuple of exception types, or a predicate "
        f"taking the exception and returning True to retry, got {on!r}; there is no catch-all default, "
        f"so name what is worth retrying: {_ON_EXAMPLE}",
        field="on",
    )


def _check_attempts(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            f"attempts must be an integer >= 1 (1 call + attempts-1 retries), got {value!r}; e.g. 3",
            field="attempts",
        )
    return value


def _check_deadline(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(
            f"deadline must be a number of seconds > 0 (total, from the first attempt) or None for no "
            f"deadline, got {value!r}; e.g. 30.0",
            field="deadline",
        )
    return float(value)


def _describe(fn: object) -> str:
    """A function's name for messages and events (a partial's function, a callable object's class)."""
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and not hasattr(fn, "__qualname__"):
        return _describe(inner)
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _retry_after(error: BaseException | None) -> float | None:
    after = getattr(error, "retry_after", None)
    if isinstance(after, int | float) and not isinstance(after, bool) and math.isfinite(after) and after > 0:
        return float(after)
    return None


class _Run:
    """The bookkeeping of one call that needed a retry (never built on the success path)."""

    __slots__ = ("attempt", "delays", "fn", "previous", "start")

    def __init__(self, fn: object, start: float) -> None:
        self.fn = fn
        self.start = start
        self.attempt = 1
        self.delays: list[float] = []
        self.previous = 0.0


class Retry:
    """Retry a call on the failures named by ``on``; see the module docstring for the exact rules.

    Use ``retry.call(fn, *args)``, ``await retry.acall(fn, *args)``, or ``@retry`` on a function or
    method (sync or async). ``seed`` makes the jitter reproducible (tests).
    """

    __slots__ = (
        "_budget",
        "_now",
        "_predicate",
        "_rng",
        "_t_deadline",
        "_t_gave_up",
        "_t_not_retryable",
        "_t_retry",
        "_t_success",
        "_types",
        "attempts",
        "backoff",
        "clock",
        "deadline",
        "name",
        "respect_retry_after",
        "retry_if_result",
        "telemetry",
    )

    def __init__(
        self,
        *,
        on: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
        attempts: int = 3,
        deadline: float | None = 30.0,
        backoff: Backoff = _DEFAULT_BACKOFF,
        retry_if_result: Callable[[Any], bool] | None = None,
        respect_retry_after: bool = True,
        budget: RetryBudgetLike | None = None,
        name: str = "default",
        seed: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._types, self._predicate = _check_on(on)
        self.attempts = _check_attempts(attempts)
        self.deadline = _check_deadline(deadline)
        if not isinstance(backoff, Backoff):
            raise ValidationError(
                f"backoff must be a Backoff, got {type(backoff).__name__}; e.g. Backoff.exponential(0.5)",
                field="backoff",
            )
        self.backoff = backoff
        if retry_if_result is not None and not callable(retry_if_result):
            raise ValidationError(
                f"retry_if_result must be a function of the result returning True to retry, or None, "
                f"got {type(retry_if_result).__name__}; e.g. retry_if_result=lambda r: r is None",
                field="retry_if_result",
            )
        self.retry_if_result = retry_if_result
        if not isinstance(respect_retry_after, bool):
            raise ValidationError(
                f"respect_retry_after must be True or False, got {respect_retry_after!r}",
                field="respect_retry_after",
            )
        self.respect_retry_after = respect_retry_after
        if budget is not None and not all(
            callable(getattr(budget, method, None))
            for method in ("record_call", "try_spend", "arecord_call", "atry_spend")
        ):
            raise ValidationError(
                f"budget must be a RetryBudget or None, got {type(budget).__name__}; "
                "e.g. budget=RetryBudget(ratio=0.2)",
                field="budget",
            )
        self._budget = budget
        self.name = check_name(name)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValidationError(
                f"seed must be an integer or None (random jitter), got {seed!r}; e.g. seed=42", field="seed"
            )
        self._rng = random.Random(seed)
        self.clock = clock
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self.telemetry = Telemetry("retry", self.name, OUTCOMES, metrics=metrics, events=events)
        self._t_success = self.telemetry.tally("success")
        self._t_retry = self.telemetry.tally("retry")
        self._t_gave_up = self.telemetry.tally("gave_up")
        self._t_not_retryable = self.telemetry.tally("not_retryable")
        self._t_deadline = self.telemetry.tally("deadline")

    @property
    def budget(self) -> RetryBudgetLike | None:
        return self._budget

    def __repr__(self) -> str:
        on = self._predicate if self._predicate is not None else tuple(t.__name__ for t in self._types)
        return (
            f"Retry(name={self.name!r}, on={on!r}, attempts={self.attempts}, deadline={self.deadline}, "
            f"backoff={self.backoff!r})"
        )

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn`` (sync or async, function or method) so each call goes through this Retry."""
        return wrap(fn, self.call, self.acall)

    # -- sync ---------------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)``, retrying as configured; its result, or the give-up error."""
        start = self._now()
        if self._budget is not None:
            self._budget.record_call()
        try:
            result: Any = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - classified in _plan; signals are re-raised there
            error: BaseException | None = exc
            result = None
        else:
            if self.succeeded(result, start):
                return result  # type: ignore[no-any-return]
            error = None
        return self._again(_Run(fn, start), args, kwargs, error, result)  # type: ignore[no-any-return]

    def resume(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        start: float,
        error: BaseException | None,
        result: Any,
    ) -> Any:
        """Go on after a first attempt of ``fn`` made by the caller (a pipeline's fast path) that failed
        with ``error``, or returned a ``result`` that :meth:`succeeded` refused, as :meth:`call` would."""
        return self._again(_Run(fn, start), args, kwargs, error, result)

    def succeeded(self, result: Any, start: float) -> bool:
        """A first attempt (started at ``start``) returned ``result``: True, counted as a success, unless
        ``retry_if_result`` asks for another attempt (False: nothing counted yet)."""
        check = self.retry_if_result
        if check is not None and check(result):
            return False
        self._t_success()
        if _SINKS.get():
            self._record(1, [], start, "success")
        return True

    def _again(
        self,
        run: _Run,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: BaseException | None,
        result: Any,
    ) -> Any:
        fn: Callable[..., Any] = run.fn  # type: ignore[assignment]
        while True:
            delay = self._plan(run, error, result)
            if self._budget is not None and not self._budget.try_spend():
                self._give_up(run, error, result, "budget")
            self._announce(run, error, delay)
            self.clock.sleep(delay)
            run.attempt += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - classified in _plan
                error = exc
                continue
            error = None
            check = self.retry_if_result
            if check is None or not check(result):
                self._finish(run, "success")
                return result

    # -- async --------------------------------------------------------------------------------------

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``, retrying as configured; each attempt is cut at the deadline."""
        start = self._now()
        budget = self._budget
        if budget is not None:
            await budget.arecord_call()  # a memory budget answers without an await inside
        error: BaseException | None = None
        expired = False
        try:  # self._attempt inlined: one coroutine less on the success path
            if self.deadline is None:
                result: Any = await fn(*args, **kwargs)
            else:
                coro, pending, result = first_step(fn(*args, **kwargs))
                if pending is not NOT_DONE:
                    result, error, expired = await finish(coro, pending, self._left(start))
        except BaseException as exc:  # noqa: BLE001 - classified in _plan; signals are re-raised there
            result, error = None, exc
        if error is None and self.succeeded(result, start):
            return result  # type: ignore[no-any-return]
        return await self._aagain(  # type: ignore[no-any-return]
            _Run(fn, start), args, kwargs, error=error, result=result, expired=expired
        )

    def aresume(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        start: float,
        error: BaseException | None,
        result: Any,
        expired: bool = False,
    ) -> Coroutine[Any, Any, Any]:
        """Go on after a first attempt of ``fn`` made by the caller (a pipeline's fast path) that failed
        with ``error``, or returned a ``result`` that :meth:`succeeded` refused, as :meth:`acall` would."""
        return self._aagain(_Run(fn, start), args, kwargs, error=error, result=result, expired=expired)

    async def _attempt(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any], start: float
    ) -> tuple[Any, BaseException | None, bool]:
        """One attempt, cut at the deadline: ``(result, error, expired)``; ``expired``: the deadline ended it.

        The deadline's ``asyncio.timeout`` is entered only if the attempt suspends (see ``_deadline``).
        """
        try:
            if self.deadline is None:
                return await fn(*args, **kwargs), None, False
            coro, pending, result = first_step(fn(*args, **kwargs))
            if pending is NOT_DONE:
                return result, None, False
            return await finish(coro, pending, self._left(start))
        except BaseException as exc:  # noqa: BLE001 - classified in _plan; signals are re-raised there
            return None, exc, False

    def _left(self, start: float) -> float:
        """Seconds left before the deadline of a call that started at ``start``."""
        return self.deadline - (self._now() - start)  # type: ignore[operator]

    async def _aagain(
        self,
        run: _Run,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        error: BaseException | None,
        result: Any,
        expired: bool,
    ) -> Any:
        fn: Callable[..., Awaitable[Any]] = run.fn  # type: ignore[assignment]
        while True:
            if expired:
                self._give_up(run, error, result, "deadline", in_flight=True)
            delay = self._plan(run, error, result)
            if self._budget is not None and not await self._budget.atry_spend():
                self._give_up(run, error, result, "budget")
            self._announce(run, error, delay)
            await self.clock.asleep(delay)
            run.attempt += 1
            result, error, expired = await self._attempt(fn, args, kwargs, run.start)
            if error is None:
                check = self.retry_if_result
                if check is None or not check(result):
                    self._finish(run, "success")
                    return result

    def retries(self, error: BaseException) -> bool:
        """Whether this policy retries ``error`` (its ``on``), for code that runs the attempts itself."""
        return self._retryable(error)

    # -- the decisions, shared by both --------------------------------------------------------------

    def _retryable(self, error: BaseException) -> bool:
        if isinstance(error, _SIGNALS):
            return False
        if self._predicate is not None:
            return bool(self._predicate(error))
        return isinstance(error, self._types)

    def _plan(self, run: _Run, error: BaseException | None, result: Any) -> float:
        """The wait before the next attempt, or raise: not retryable, attempts used up, deadline."""
        if error is not None and not self._retryable(error):
            self._finish(run, "not_retryable")
            raise error
        if run.attempt >= self.attempts:
            self._give_up(run, error, result, "attempts")
        delay = self.backoff.delay(run.attempt, run.previous, self._rng)
        run.previous = delay
        if self.respect_retry_after:
            after = _retry_after(error)
            if after is not None and after > delay:
                delay = min(after, self.backoff.max_delay)
        if self.deadline is not None and self._now() - run.start + delay >= self.deadline:
            self._give_up(run, error, result, "deadline", delay=delay)
        return delay

    def _announce(self, run: _Run, error: BaseException | None, delay: float) -> None:
        run.delays.append(delay)
        self._t_retry()
        self.telemetry.emit(
            "retrying",
            function=_describe(run.fn),
            attempt=run.attempt,
            delay=round(delay, 6),
            error=None if error is None else type(error).__name__,
        )

    def _give_up(
        self,
        run: _Run,
        error: BaseException | None,
        result: Any,
        reason: str,
        *,
        delay: float | None = None,
        in_flight: bool = False,
    ) -> NoReturn:
        elapsed = self._now() - run.start
        function = _describe(run.fn)
        last = repr(error) if error is not None else f"result {_repr.repr(result)} matched retry_if_result"
        context: dict[str, Any] = {"name": self.name, "function": function, "elapsed": round(elapsed, 6)}
        if error is None:
            context["result"] = result
        error_type = None if error is None else type(error).__name__
        if reason == "deadline":
            self._finish(run, "deadline")
            self.telemetry.emit(
                "gave_up", function=function, attempts=run.attempt, reason="deadline", error=error_type
            )
            if in_flight:
                why = f"attempt {run.attempt} was cancelled at the deadline"
            else:
                why = f"the next wait of {delay:.3f}s would cross it"
            raise DeadlineExceeded(
                f"{function} gave up at its {self.deadline}s deadline after {run.attempt} attempt(s) in "
                f"{elapsed:.3f}s: {why}; last error: {last}",
                context={**context, "attempts": run.attempt, "deadline": self.deadline, "last_error": error},
            ) from error
        if reason == "budget":
            self._finish(run, "budget")
            self.telemetry.emit("budget_exhausted", function=function, attempts=run.attempt, error=error_type)
            raise RetryExhausted(
                f"{function} gave up after {run.attempt} attempt(s) in {elapsed:.3f}s: the retry budget "
                f"is spent (too many retries fleet-wide); last error: {last}",
                attempts=run.attempt,
                last_error=error,
                context={**context, "reason": "budget"},
            ) from error
        self._finish(run, "gave_up")
        self.telemetry.emit(
            "gave_up", function=function, attempts=run.attempt, reason="attempts", error=error_type
        )
        raise RetryExhausted(
            f"{function} failed after {run.attempt} attempts in {elapsed:.3f}s; last error: {last}",
            attempts=run.attempt,
            last_error=error,
            context={**context, "reason": "attempts"},
        ) from error

    def _finish(self, run: _Run, outcome: str) -> None:
        if outcome == "success":
            self._t_success()
        elif outcome == "not_retryable":
            self._t_not_retryable()
        elif outcome == "deadline":
            self._t_deadline()
        else:
            self._t_gave_up()
        if _SINKS.get():
            self._record(run.attempt, run.delays, run.start, outcome)

    def _record(self, attempts: int, delays: list[float], start: float, outcome: str) -> None:
        stats = RetryStats(attempts, attempts - 1, list(delays), self._now() - start, outcome, self.name)
        for sink in _SINKS.get():
            sink.append(stats)
