"""Bulkhead: at most ``max_concurrent`` calls at once, so one slow dependency cannot take every worker.

A caller gets a free slot at once; when none is free it may wait in a bounded FIFO queue for up to
``max_wait`` seconds; otherwise it gets :class:`~buttress.errors.BulkheadFull`. Threads and asyncio tasks
(on any number of event loops) share one bulkhead and one count.

How it stays cheap: the free slots are tokens in a :class:`collections.deque`, whose ``pop`` and ``append``
are atomic in CPython, so taking and returning a slot needs no lock (about 0.1 us for both). The lock is
only taken on the slow path: when a caller must queue, and when a release finds waiters, in which case
the slot goes straight to the oldest waiter (a thread blocked on its own lock, or a task's future resolved
with ``loop.call_soon_threadsafe``). A caller that finds waiters queues behind them, so waiters are served
in order.

Waits are bounded in real time (a slot frees up when another caller releases, not when time passes); the
injected clock only measures how long each queued caller waited.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Self, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import BulkheadFull, ValidationError
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["ACTIVE_METRIC", "QUEUED_METRIC", "Bulkhead", "BulkheadSnapshot"]

P = ParamSpec("P")
R = TypeVar("R")

ACTIVE_METRIC = "buttress_resilience_bulkhead_active"
QUEUED_METRIC = "buttress_resilience_bulkhead_queued"


@dataclass(frozen=True, slots=True)
class BulkheadSnapshot:
    """A bulkhead's settings and load at one moment (``rejected`` counts since it was built)."""

    name: str
    max_concurrent: int
    max_queued: int
    active: int
    queued: int
    rejected: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_concurrent": self.max_concurrent,
            "max_queued": self.max_queued,
            "active": self.active,
            "queued": self.queued,
            "rejected": self.rejected,
        }


class _SyncWaiter:
    """A queued thread: it blocks on its own held lock until a releaser hands it a slot."""

    __slots__ = ("granted", "lock")

    def __init__(self) -> None:
        self.granted = False
        self.lock = threading.Lock()
        self.lock.acquire()

    def wake(self) -> bool:
        self.lock.release()
        return True


class _AsyncWaiter:
    """A queued task: it awaits a future that a releaser (from any thread) resolves on its loop."""

    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.granted = False
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # its loop is closed: nobody will use the slot, so it must go back
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_Waiter = _SyncWaiter | _AsyncWaiter


def _check_count(value: object, field: str, minimum: int, meaning: str, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(
            f"{field} must be an integer >= {minimum} ({meaning}), got {value!r}; e.g. {example}", field=field
        )
    return value


def _check_wait(value: object, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or value > threading.TIMEOUT_MAX
    ):
        raise ValidationError(
            f"{field} must be a finite number of seconds >= 0 (how long a queued caller waits for a slot), "
            f"got {value!r}; e.g. 1.0",
            field=field,
        )
    return float(value)


class Bulkhead:
    """Limit concurrent calls to ``max_concurrent``; up to ``max_queued`` more wait up to ``max_wait`` s.

    Use it as a decorator (sync or async functions), with :meth:`call`/:meth:`acall`, as a context manager
    (``with bulkhead:`` / ``async with bulkhead:``) or with :meth:`acquire`/:meth:`release` by hand. The
    default ``max_queued=0`` rejects at once when every slot is busy: load shedding rather than queueing.
    A sync caller that waits blocks its thread, so from async code use the async forms.
    """

    __slots__ = (
        "_admitted",
        "_free",
        "_lock",
        "_max",
        "_max_queued",
        "_max_wait",
        "_now",
        "_queued",
        "_rejected",
        "_waiters",
        "clock",
        "name",
        "telemetry",
    )

    def __init__(
        self,
        max_concurrent: int = 10,
        *,
        max_queued: int = 0,
        max_wait: float = 1.0,
        name: str = "default",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._max = _check_count(max_concurrent, "max_concurrent", 1, "calls running at once", 10)
        self._max_queued = _check_count(
            max_queued, "max_queued", 0, "callers that may wait for a slot; 0 rejects at once when full", 20
        )
        self._max_wait = _check_wait(max_wait, "max_wait")
        self.name = check_name(name)
        self.clock = clock
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._free: deque[bool] = deque([True] * self._max)
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self.telemetry = Telemetry(
            "bulkhead", self.name, ("admitted", "rejected", "queued"), metrics=metrics, events=events
        )
        self._admitted = self.telemetry.tally("admitted")
        self._rejected = self.telemetry.tally("rejected")
        self._queued = self.telemetry.tally("queued")
        self.telemetry.on_collect(self._export_gauges)

    def __repr__(self) -> str:
        return (
            f"Bulkhead(name={self.name!r}, max_concurrent={self._max}, max_queued={self._max_queued}, "
            f"max_wait={self._max_wait})"
        )

    @property
    def max_concurrent(self) -> int:
        return self._max

    @property
    def max_queued(self) -> int:
        return self._max_queued

    @property
    def max_wait(self) -> float:
        return self._max_wait

    def snapshot(self) -> BulkheadSnapshot:
        """Settings, slots in use, callers waiting, and rejections so far."""
        return BulkheadSnapshot(
            name=self.name,
            max_concurrent=self._max,
            max_queued=self._max_queued,
            active=self._max - len(self._free),
            queued=len(self._waiters),
            rejected=self.telemetry.counts()["rejected"],
        )

    # -- sync ------------------------------------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> None:
        """Take a slot, queueing up to ``timeout`` s (default ``max_wait``), or raise BulkheadFull."""
        wait = self._max_wait if timeout is None else _check_wait(timeout, "timeout")
        if not self._waiters:
            try:
                self._free.pop()
            except IndexError:
                pass
            else:
                self._admitted()
                return
        self._acquire_slow(wait)

    def release(self) -> None:
        """Give a slot back (to the oldest waiter, if any). Safe from any thread and from async code."""
        if len(self._free) >= self._max:
            raise RuntimeError(
                f"Bulkhead {self.name!r}: release() without a matching acquire(); every slot is already free"
            )
        self._free.append(True)
        if self._waiters:
            self._drain()

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in a slot; the slot is released however ``fn`` ends."""
        if not self._waiters:
            try:
                self._free.pop()
            except IndexError:
                self._acquire_slow(self._max_wait)
            else:
                self._admitted()
        else:
            self._acquire_slow(self._max_wait)
        try:
            return fn(*args, **kwargs)
        finally:
            self._free.append(True)
            if self._waiters:
                self._drain()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _acquire_slow(self, wait: float) -> None:
        waiter = _SyncWaiter()
        joined = self._join(waiter, wait)
        if joined == "admitted":
            self._admitted()
            return
        if joined == "full":
            raise self._reject("full", wait)
        start = self._now()
        try:
            granted = waiter.lock.acquire(timeout=wait)
        except BaseException:  # interrupted while queued: leave the queue, or pass on a slot just granted
            if self._leave(waiter):
                self.release()
            raise
        self.telemetry.observe_wait(self._now() - start)
        if granted or self._leave(waiter):
            self._admitted()
            return
        raise self._reject("expired", wait)

    # -- async -----------------------------------------------------------------------------------------

    async def aacquire(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - mirrors acquire()
        """Take a slot, waiting (without blocking the loop) up to ``timeout`` s, or raise BulkheadFull."""
        wait = self._max_wait if timeout is None else _check_wait(timeout, "timeout")
        if not self._waiters:
            try:
                self._free.pop()
            except IndexError:
                pass
            else:
                self._admitted()
                return
        await self._aacquire_slow(wait)

    async def arelease(self) -> None:
        """:meth:`release` for symmetry in async code (releasing never waits)."""
        self.release()

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` in a slot; the slot is released however it ends (cancelled too)."""
        if not self._waiters:
            try:
                self._free.pop()
            except IndexError:
                await self._aacquire_slow(self._max_wait)
            else:
                self._admitted()
        else:
            await self._aacquire_slow(self._max_wait)
        try:
            return await fn(*args, **kwargs)
        finally:
            self._free.append(True)
            if self._waiters:
                self._drain()

    async def __aenter__(self) -> Self:
        await self.aacquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    async def _aacquire_slow(self, wait: float) -> None:
        waiter = _AsyncWaiter(asyncio.get_running_loop())
        joined = self._join(waiter, wait)
        if joined == "admitted":
            self._admitted()
            return
        if joined == "full":
            raise self._reject("full", wait)
        start = self._now()
        try:
            async with asyncio.timeout(wait):
                await waiter.future
        except TimeoutError:
            self.telemetry.observe_wait(self._now() - start)
            if not self._leave(waiter):
                raise self._reject("expired", wait) from None
        except BaseException:  # cancelled while queued: leave the queue, or pass on a slot just granted
            if self._leave(waiter):
                self.release()
            raise
        else:
            self.telemetry.observe_wait(self._now() - start)
        self._admitted()

    # -- decorator -------------------------------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function (or method) so each call runs in a slot."""
        return wrap(fn, self.call, self.acall)

    # -- queue -----------------------------------------------------------------------------------------

    def _join(self, waiter: _Waiter, wait: float) -> Literal["admitted", "queued", "full"]:
        """Under the lock: serve earlier waiters first, then take a free slot, queue, or report full."""
        with self._lock:
            woken = self._grant_locked()
            outcome: Literal["admitted", "queued", "full"]
            if not self._waiters and self._take_locked():
                outcome = "admitted"
            elif len(self._waiters) >= self._max_queued or wait <= 0:
                outcome = "full"
            else:
                self._waiters.append(waiter)
                outcome = "queued"
        self._wake(woken)
        if outcome == "queued":
            self._queued()
        return outcome

    def _take_locked(self) -> bool:
        try:
            self._free.pop()
        except IndexError:
            return False
        return True

    def _grant_locked(self) -> list[_Waiter]:
        """Hand free slots to the oldest waiters; they are woken after the lock is released."""
        woken: list[_Waiter] = []
        waiters = self._waiters
        while waiters and self._take_locked():
            waiter = waiters.popleft()
            waiter.granted = True
            woken.append(waiter)
        return woken

    def _drain(self) -> None:
        with self._lock:
            woken = self._grant_locked()
        self._wake(woken)

    def _wake(self, woken: list[_Waiter]) -> None:
        for waiter in woken:
            if not waiter.wake():
                self.release()

    def _leave(self, waiter: _Waiter) -> bool:
        """Take ``waiter`` out of the queue; True if it was granted a slot meanwhile (it holds one)."""
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
            return False

    def _reject(self, reason: Literal["full", "expired"], wait: float) -> BulkheadFull:
        self._rejected()
        active, queued = self._max - len(self._free), len(self._waiters)
        if reason == "full":
            message = (
                f"bulkhead {self.name!r} is full: {active} of max_concurrent={self._max} calls are running "
                f"and {queued} of max_queued={self._max_queued} callers are waiting; retry later, or raise "
                "max_concurrent or max_queued"
            )
        else:
            message = (
                f"bulkhead {self.name!r} had no free slot within {wait:g} s (max_concurrent={self._max}, "
                f"max_queued={self._max_queued}); retry later, or raise max_concurrent or max_wait"
            )
        facts = {
            "name": self.name,
            "reason": reason,
            "max_concurrent": self._max,
            "max_queued": self._max_queued,
            "active": active,
            "queued": queued,
        }
        self.telemetry.emit("rejected", **facts)
        return BulkheadFull(message, context=facts)

    def _export_gauges(self, registry: MetricsRegistry) -> None:
        snapshot = self.snapshot()
        registry.gauge(ACTIVE_METRIC, "Calls running inside a bulkhead now.", labels=("key",)).labels(
            key=self.name
        ).set(snapshot.active)
        registry.gauge(QUEUED_METRIC, "Callers waiting for a bulkhead slot now.", labels=("key",)).labels(
            key=self.name
        ).set(snapshot.queued)
