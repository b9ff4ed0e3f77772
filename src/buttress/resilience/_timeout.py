"""Timeout: stop waiting for a call after ``seconds``.

Async calls are cancelled for real: :meth:`Timeout.acall` and ``async with timeout:`` use
:func:`asyncio.timeout` (the event loop's clock), so the awaited coroutine sees ``CancelledError`` and can
clean up, and the caller gets :class:`~buttress.errors.DeadlineExceeded`. ``acall`` enters it only once the
call suspends (a call that finishes without waiting cannot be interrupted, so it costs no timer).

A sync call cannot be interrupted from outside in Python, so :meth:`Timeout.call` is the honest option: it
runs the function in a worker thread and waits up to ``seconds``. At the deadline the caller gets
DeadlineExceeded and the worker is *abandoned*: it runs on to the end, its side effects still happen, and
its result or exception is discarded (logged at debug). Workers come from a process-wide pool that grows
when every worker is busy or abandoned and shrinks after 30 s idle, so abandoned calls never starve new
ones; the hand-off costs about 15 us per call (a fresh thread would cost about 75 us). Context variables
are copied into the worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import DeadlineExceeded, ValidationError
from buttress.resilience._deadline import NOT_DONE, finish, first_step
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["Timeout"]

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)

_IDLE_SECONDS = 30.0


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _Job:
    """One sync call handed to a worker; caller and worker race to settle it through ``claim``.

    Whoever pops the single item of ``claim`` first decides: the worker (the result is delivered and
    ``done`` released) or the caller at its deadline (the call is abandoned, the worker drops the result).
    """

    __slots__ = ("args", "claim", "context", "done", "error", "fn", "kwargs", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()
        self.done = threading.Lock()
        self.done.acquire()
        self.claim = [True]
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            self.error = exc
        try:
            self.claim.pop()
        except IndexError:
            _log.debug(
                "abandoned call to %s finished after its timeout; its %s was discarded",
                _describe(self.fn),
                "result" if self.error is None else "exception",
                exc_info=self.error,
            )
            self.result = self.error = None
        else:
            self.done.release()


class _Workers:
    """Daemon worker threads for sync timeouts: one more whenever none is idle, fewer after idling.

    ``_idle`` counts workers waiting for a job minus jobs queued for them, so a submit that finds it
    positive knows a worker will take its job.
    """

    def __init__(self, idle_seconds: float = _IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self.threads = 0

    def submit(self, job: _Job) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:  # started before the job is queued: if it cannot start, the job never runs
            threading.Thread(target=self._work, name="buttress-timeout", daemon=True).start()
        self._jobs.put(job)

    def _work(self) -> None:
        with self._lock:
            self.threads += 1
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # more idle workers than queued jobs: this one can go
                        self._idle -= 1
                        self.threads -= 1
                        return
                continue  # a submit counted on this worker after the wait ran out; its job is coming
            job.run()
            del job
            with self._lock:
                self._idle += 1


_workers = _Workers()


def _reset_workers() -> None:
    global _workers  # noqa: PLW0603 - a forked child has none of the parent's threads
    _workers = _Workers()


os.register_at_fork(after_in_child=_reset_workers)


def _check_seconds(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
        or value > threading.TIMEOUT_MAX
    ):
        raise ValidationError(
            f"seconds must be a finite number of seconds > 0 (how long a call may take), got {value!r}; "
            "e.g. 5.0",
            field="seconds",
        )
    return float(value)


class Timeout:
    """Give up on a call after ``seconds`` with DeadlineExceeded.

    Async (:meth:`acall`, ``async with``, decorated ``async def``) cancels the work. Sync (:meth:`call`,
    decorated ``def``) runs the function in a worker thread and abandons it at the deadline: the function
    keeps running and its side effects still happen, so give blocking I/O its own timeout too where the
    library has one. ``clock`` is accepted for symmetry; deadlines use the event loop's and the OS's real
    time, which is what cancellation and thread waits are driven by.
    """

    __slots__ = ("_entered", "_failure", "_seconds", "_success", "_timed_out", "clock", "name", "telemetry")

    def __init__(
        self,
        seconds: float,
        *,
        name: str = "default",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._seconds = _check_seconds(seconds)
        self.name = check_name(name)
        self.clock = clock
        self._entered: dict[asyncio.Task[Any], list[asyncio.Timeout]] = {}
        self.telemetry = Telemetry(
            "timeout", self.name, ("success", "failure", "timeout"), metrics=metrics, events=events
        )
        self._success = self.telemetry.tally("success")
        self._failure = self.telemetry.tally("failure")
        self._timed_out = self.telemetry.tally("timeout")

    def __repr__(self) -> str:
        return f"Timeout({self._seconds}, name={self.name!r})"

    @property
    def seconds(self) -> float:
        return self._seconds

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` in a worker; its result or exception if it ends in time, else DeadlineExceeded."""
        job = _Job(fn, args, kwargs)
        _workers.submit(job)
        try:
            finished = job.done.acquire(timeout=self._seconds)
        except BaseException:  # interrupted while waiting: abandon the call
            job.claim.clear()
            raise
        if not finished:
            try:
                job.claim.pop()
            except IndexError:  # pragma: no cover - a narrow race: the worker settled it just now
                job.done.acquire()  # and is about to release ``done``
            else:
                raise self._deadline(
                    fn,
                    "it keeps running in a background thread and its result will be discarded",
                )
        error = job.error
        if error is not None:
            self._failure()
            job.error = None
            raise error
        self._success()
        return job.result  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``; cancel it and raise DeadlineExceeded after ``seconds``.

        The ``asyncio.timeout`` is entered only if the call suspends (see ``_deadline``): one that finishes
        in its first step cannot be cancelled by a timer anyway. The seconds count from the call's start.
        """
        start = time.monotonic()
        try:
            coro, pending, result = first_step(fn(*args, **kwargs))
            error, expired = None, False
            if pending is not NOT_DONE:
                result, error, expired = await finish(
                    coro, pending, self._seconds - (time.monotonic() - start)
                )
        except BaseException:  # raised in the first step, or the caller's own cancellation
            self._failure()
            raise
        if error is not None:
            if expired and isinstance(error, asyncio.CancelledError):  # the deadline's own cancellation
                raise self._deadline(fn, "it was cancelled") from None
            self._failure()
            raise error
        self._success()
        return result  # type: ignore[no-any-return]

    async def __aenter__(self) -> Self:
        """Bound the ``async with`` block by ``seconds`` (asyncio.timeout semantics, per task)."""
        scope = asyncio.timeout(self._seconds)
        await scope.__aenter__()  # raises RuntimeError outside a task
        self._entered.setdefault(cast("asyncio.Task[Any]", asyncio.current_task()), []).append(scope)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task = cast("asyncio.Task[Any]", asyncio.current_task())
        scopes = self._entered[task]
        scope = scopes.pop()
        if not scopes:
            del self._entered[task]
        try:
            await scope.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            if scope.expired():
                raise self._deadline(None, "the block was cancelled") from None
            raise  # pragma: no cover - asyncio.timeout only raises TimeoutError when it expired
        if exc_type is None:
            self._success()
        else:
            self._failure()

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function (or method) with this timeout."""
        return wrap(fn, self.call, self.acall)

    def _deadline(self, fn: object, what_happened: str) -> DeadlineExceeded:
        self._timed_out()
        target = "the block" if fn is None else f"the call to {_describe(fn)}"
        self.telemetry.emit(
            "timed_out", seconds=self._seconds, function=None if fn is None else _describe(fn)
        )
        return DeadlineExceeded(
            f"timeout {self.name!r}: {target} did not finish within {self._seconds:g} s; {what_happened}. "
            "Raise seconds if such calls are expected to be slow",
            context={"name": self.name, "seconds": self._seconds},
        )
