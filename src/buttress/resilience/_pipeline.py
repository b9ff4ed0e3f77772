"""Pipeline: the strategies composed in one documented order, as a decorator, a call or a guard.

Order, outermost first::

    fallback -> retry (deadline, budget) -> hedge -> breaker -> limiter -> bulkhead -> timeout -> fn

Why this order:

- **fallback** is outermost so it also catches what the others raise (``RetryExhausted``,
  ``CircuitOpen``, ``RateLimited``, ``BulkheadFull``, ``DeadlineExceeded``).
- **retry** wraps everything below, so each attempt asks the breaker again and waits its turn at the
  limiter; its deadline bounds the whole call, waits included.
- **hedge** sits inside retry: a hedged group of attempts counts as one attempt.
- **breaker** comes before the limiter, so a call the breaker refuses does not spend a token, and it
  releases its permit (records nothing) when the limiter or the bulkhead refuses: a local rejection says
  nothing about the upstream's health.
- **limiter** before **bulkhead**: a call waiting for its rate-limit turn holds no concurrency slot.
- **timeout** is innermost: it bounds one attempt, and the breaker sees a timeout as a failure (and its
  duration as a slow call).

The strategies are composed once, flat, rather than as nested decorators: one Python frame per layer
would cost more than the strategies themselves.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.resilience._decorate import Later, Runner, check_name, wrap_packed
from buttress.resilience._pipeline_step import arecord_failure, record_failure, runner, stepper

if TYPE_CHECKING:
    from buttress.resilience._breaker import CircuitBreaker, Permit
    from buttress.resilience._bulkhead import Bulkhead
    from buttress.resilience._fallback import Fallback
    from buttress.resilience._hedge import Hedge
    from buttress.resilience._limiter import RateLimiter
    from buttress.resilience._retry import Retry
    from buttress.resilience._timeout import Timeout

__all__ = ["Pipeline"]

P = ParamSpec("P")
R = TypeVar("R")


class Pipeline:
    """Strategies applied in the order above; any of them may be left out.

    ``limiter_key`` picks the limiter's bucket (one limiter can serve many keys, such as hosts). A
    pipeline is immutable: :meth:`replace` returns a new one sharing the untouched strategies (and so
    their state), which is how a fallback is added to a pipeline that came from settings.
    """

    __slots__ = (
        "_now",
        "_run_async",
        "_run_sync",
        "_stepped",
        "breaker",
        "bulkhead",
        "clock",
        "fallback",
        "hedge",
        "limiter",
        "limiter_key",
        "name",
        "retry",
        "timeout",
    )

    def __init__(
        self,
        name: str = "default",
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        limiter_key: str = "default",
        bulkhead: Bulkhead | None = None,
        timeout: Timeout | None = None,
        hedge: Hedge | None = None,
        fallback: Fallback | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = check_name(name)
        self.limiter_key = check_name(limiter_key, "limiter_key")
        self.retry = retry
        self.breaker = breaker
        self.limiter = limiter
        self.bulkhead = bulkhead
        self.timeout = timeout
        self.hedge = hedge
        self.fallback = fallback
        self.clock = clock
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._run_sync = self._compose_sync()
        self._run_async = self._compose_async()

    def __repr__(self) -> str:
        parts = [
            f"{label}={strategy.name!r}"
            for label, strategy in (
                ("fallback", self.fallback),
                ("retry", self.retry),
                ("hedge", self.hedge),
                ("breaker", self.breaker),
                ("limiter", self.limiter),
                ("bulkhead", self.bulkhead),
                ("timeout", self.timeout),
            )
            if strategy is not None
        ]
        return f"Pipeline({self.name!r}{''.join(', ' + part for part in parts)})"

    def replace(self, **changes: Any) -> Pipeline:
        """A copy with some strategies swapped, added (a fallback) or removed (``None``)."""
        allowed = {
            "name",
            "retry",
            "breaker",
            "limiter",
            "limiter_key",
            "bulkhead",
            "timeout",
            "hedge",
            "fallback",
            "clock",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValidationError(
                f"Pipeline.replace() got unknown {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}",
                field=unknown[0],
            )
        current = {name: getattr(self, name) for name in allowed}
        return Pipeline(**{**current, **changes})

    # -- decorator and calls ----------------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function or method; its signature and type are kept."""
        if self.hedge is not None and not inspect.iscoroutinefunction(fn):
            raise ValidationError(
                f"pipeline {self.name!r} hedges, which needs an async function; "
                f"{getattr(fn, '__qualname__', fn)!r} is sync. Drop the hedge or make it async",
                field="hedge",
            )
        for strategy in (self.breaker, self.limiter):
            if strategy is not None:
                strategy.adopt_name(fn)  # an unnamed shared breaker or limiter takes fn's name
        return wrap_packed(fn, self._run_sync, self._run_async, stepped=self._stepped)

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``fn(*args, **kwargs)`` through every strategy (sync)."""
        return self._run_sync(fn, args, kwargs)  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` through every strategy."""
        result = self._run_async(fn, args, kwargs)
        if not self._stepped:
            return await result  # type: ignore[no-any-return]
        if type(result) is Later:
            return await result.awaitable  # type: ignore[no-any-return]
        return result  # type: ignore[no-any-return]

    # -- composition, once per pipeline -------------------------------------------------------------
    # Each runner takes (fn, args, kwargs) and returns the result (sync) or an awaitable (async) without
    # adding a coroutine frame of its own: every frame in an await chain costs about 0.25 us.

    def _fast(self) -> bool:
        """Whether the fast paths of ``_pipeline_step`` serve this pipeline (see there)."""
        retry = self.retry
        return (
            retry is not None
            and retry.budget is None
            and self.hedge is None
            and self.fallback is None
            and self.bulkhead is None
            and self.timeout is None
        )

    def _compose_sync(self) -> Runner:
        retry, fallback, attempt = self.retry, self.fallback, self._attempt
        if retry is not None and self._fast():
            return runner(retry, self.breaker, self.limiter, self.limiter_key, self._now, attempt)
        if self.hedge is not None:
            name = self.name

            def refuse(fn: Any, args: Any, kwargs: Any) -> Any:
                raise ValidationError(
                    f"pipeline {name!r} hedges, which needs async code: use await pipeline.acall(...)",
                    field="hedge",
                )

            return refuse
        if retry is not None and fallback is not None:
            return lambda fn, args, kwargs: fallback.call(retry.call, attempt, fn, args, kwargs)
        if retry is not None:
            return lambda fn, args, kwargs: retry.call(attempt, fn, args, kwargs)
        if fallback is not None:
            return lambda fn, args, kwargs: fallback.call(attempt, fn, args, kwargs)
        return attempt

    def _compose_async(self) -> Runner:
        """The async runner: the fast path (see ``_pipeline_step``) for a retry (without a budget) with a
        breaker or a limiter or both, else the runner of the ordinary async path."""
        ordinary = self._compose_ordinary_async()
        retry = self.retry
        self._stepped = retry is not None and self._fast()
        if retry is not None and self._stepped:
            return stepper(
                retry, self.breaker, self.limiter, self.limiter_key, self._now, ordinary, self._aattempt
            )
        return ordinary

    def _compose_ordinary_async(
        self,
    ) -> Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
        retry, fallback, hedge = self.retry, self.fallback, self.hedge
        attempt: Callable[..., Awaitable[Any]] = self._aattempt
        if hedge is not None:
            inner = attempt

            def attempt(fn: Any, args: Any, kwargs: Any) -> Awaitable[Any]:
                return hedge.acall(inner, fn, args, kwargs)

        if retry is not None and fallback is not None:
            return lambda fn, args, kwargs: fallback.acall(retry.acall, attempt, fn, args, kwargs)
        if retry is not None:
            return functools.partial(retry.acall, attempt)  # a partial adds no Python frame; a lambda does
        if fallback is not None:
            return lambda fn, args, kwargs: fallback.acall(attempt, fn, args, kwargs)
        return attempt

    # -- one attempt ------------------------------------------------------------------------------

    def _attempt(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        breaker, limiter, bulkhead, timeout = self.breaker, self.limiter, self.bulkhead, self.timeout
        permit = breaker.acquire() if breaker is not None else None
        try:
            if limiter is not None:
                limiter.acquire(self.limiter_key)
            if bulkhead is not None:
                bulkhead.acquire()
        except BaseException:
            if breaker is not None:
                breaker.release(permit)  # type: ignore[arg-type]
            raise
        start = self._now()
        try:
            result = fn(*args, **kwargs) if timeout is None else timeout.call(fn, *args, **kwargs)
        except BaseException as exc:
            if breaker is not None:
                record_failure(breaker, permit, exc, self._now() - start)  # type: ignore[arg-type]
            raise
        finally:
            if bulkhead is not None:
                bulkhead.release()
        if breaker is not None:
            breaker.record_success(permit, self._now() - start)  # type: ignore[arg-type]
        return result

    async def _aattempt(  # noqa: PLR0912 - flat on purpose: a frame per strategy costs more than it
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        # the *_fast methods answer when no I/O is needed (a memory store), so no coroutine is made;
        # otherwise the a-method is awaited. Nothing here asks which store is behind a strategy.
        breaker, limiter, bulkhead, timeout = self.breaker, self.limiter, self.bulkhead, self.timeout
        permit = None
        if breaker is not None:
            permit = breaker.acquire_fast()
            if permit is None:
                permit = await breaker.aacquire()
        try:
            if limiter is not None and not limiter.acquire_fast(self.limiter_key):
                await limiter.aacquire(self.limiter_key)
            if bulkhead is not None:
                await bulkhead.aacquire()
        except BaseException:
            if breaker is not None:
                await breaker.arelease(permit)  # type: ignore[arg-type]
            raise
        start = self._now()
        try:
            if timeout is None:
                result = await fn(*args, **kwargs)
            else:
                result = await timeout.acall(fn, *args, **kwargs)
        except BaseException as exc:
            if breaker is not None:
                await arecord_failure(breaker, permit, exc, self._now() - start)  # type: ignore[arg-type]
            raise
        finally:
            if bulkhead is not None:
                bulkhead.release()
        if breaker is not None:
            duration = self._now() - start
            if not breaker.record_success_fast(permit, duration):  # type: ignore[arg-type]
                await breaker.arecord_success(permit, duration)  # type: ignore[arg-type]
        return result

    # -- guard: the part of a pipeline that can wrap a block --------------------------------------

    @contextmanager
    def guard(self) -> Iterator[None]:
        """``with pipeline.guard():`` applies the breaker, limiter and bulkhead to a block.

        Retry, hedge, fallback and timeout need to call (again) or cancel the code, which a ``with`` block
        cannot offer: use the decorator or :meth:`call` for them. A pipeline that has any of them
        refuses to guard rather than silently skipping them.
        """
        self._check_guardable()
        permit, start = self._enter()
        try:
            yield
        except BaseException as exc:
            if self.breaker is not None:
                record_failure(self.breaker, permit, exc, self._now() - start)  # type: ignore[arg-type]
            raise
        finally:
            if self.bulkhead is not None:
                self.bulkhead.release()
        if self.breaker is not None:
            self.breaker.record_success(permit, self._now() - start)  # type: ignore[arg-type]

    @asynccontextmanager
    async def aguard(self) -> AsyncIterator[None]:
        """``async with pipeline.aguard():``, the async twin of :meth:`guard`."""
        self._check_guardable()
        breaker = self.breaker
        permit = await breaker.aacquire() if breaker is not None else None
        try:
            if self.limiter is not None:
                await self.limiter.aacquire(self.limiter_key)
            if self.bulkhead is not None:
                await self.bulkhead.aacquire()
        except BaseException:
            if breaker is not None:
                await breaker.arelease(permit)  # type: ignore[arg-type]
            raise
        start = self._now()
        try:
            yield
        except BaseException as exc:
            if breaker is not None:
                await arecord_failure(breaker, permit, exc, self._now() - start)  # type: ignore[arg-type]
            raise
        finally:
            if self.bulkhead is not None:
                self.bulkhead.release()
        if breaker is not None:
            await breaker.arecord_success(permit, self._now() - start)  # type: ignore[arg-type]

    def _check_guardable(self) -> None:
        present = [
            label
            for label, strategy in (
                ("retry", self.retry),
                ("hedge", self.hedge),
                ("fallback", self.fallback),
                ("timeout", self.timeout),
            )
            if strategy is not None
        ]
        if present:
            raise ValidationError(
                f"pipeline {self.name!r} has {', '.join(present)}, which a with-block cannot apply; "
                "decorate a function or use pipeline.call(fn, ...) instead",
                field=present[0],
            )

    def _enter(self) -> tuple[Permit | None, float]:
        breaker = self.breaker
        permit = breaker.acquire() if breaker is not None else None
        try:
            if self.limiter is not None:
                self.limiter.acquire(self.limiter_key)
            if self.bulkhead is not None:
                self.bulkhead.acquire()
        except BaseException:
            if breaker is not None:
                breaker.release(permit)  # type: ignore[arg-type]
            raise
        return permit, self._now()
