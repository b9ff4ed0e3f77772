"""Injectable time, so breakers, limiters, TTLs, backoff and schedules are tested without sleeping.

Every component that measures or waits takes a :class:`Clock`. Production code gets :data:`SYSTEM_CLOCK`;
tests pass a :class:`FakeClock` and move time by hand with :meth:`FakeClock.advance`.
"""

from __future__ import annotations

import asyncio
import threading
import time as _time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Monotonic time for durations, wall time for timestamps, and the two ways to wait."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards. Use for durations and deadlines."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch. Use for timestamps shown to people or stored."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` without blocking the event loop."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``time.sleep`` and ``asyncio.sleep``."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


@dataclass(slots=True)
class _AsyncSleeper:
    deadline: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


@dataclass(eq=False)
class FakeClock:
    """A clock that only moves when told to.

    With ``auto_advance=True`` (the default) ``sleep`` and ``asleep`` move time forward by the requested
    amount and return at once, so code that backs off for minutes runs in microseconds and the test reads
    :attr:`sleeps` to see what it waited. With ``auto_advance=False`` sleepers block (threads) or suspend
    (tasks) until another thread or task calls :meth:`advance` past their deadline; use
    :meth:`wait_for_sleepers` to know they are parked before advancing.
    """

    start_monotonic: float = 1_000.0
    start_time: float = 1_700_000_000.0
    auto_advance: bool = True
    sleeps: list[float] = field(default_factory=list)
    _offset: float = 0.0
    _condition: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _thread_sleepers: int = 0
    _async_sleepers: list[_AsyncSleeper] = field(default_factory=list, repr=False)

    def monotonic(self) -> float:
        return self.start_monotonic + self._offset

    def time(self) -> float:
        return self.start_time + self._offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError(
                f"FakeClock.advance(seconds) needs seconds >= 0, got {seconds!r}; time never goes back"
            )
        with self._condition:
            self._offset += seconds
            now = self.monotonic()
            due = [s for s in self._async_sleepers if s.deadline <= now]
            self._async_sleepers = [s for s in self._async_sleepers if s.deadline > now]
            self._condition.notify_all()
        for sleeper in due:
            sleeper.loop.call_soon_threadsafe(_resolve, sleeper.future)

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        with self._condition:
            self.sleeps.append(seconds)
            if self.auto_advance:
                self._offset += seconds
                self._condition.notify_all()
                return
            deadline = self.monotonic() + seconds
            self._thread_sleepers += 1
            self._condition.notify_all()
            try:
                while self.monotonic() < deadline:
                    self._condition.wait()
            finally:
                self._thread_sleepers -= 1

    async def asleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        if self.auto_advance:
            with self._condition:
                self.sleeps.append(seconds)
                self._offset += seconds
                self._condition.notify_all()
            await asyncio.sleep(0)  # still a suspension point, as a real sleep is
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._condition:
            self.sleeps.append(seconds)
            deadline = self.monotonic() + seconds
            if deadline <= self.monotonic():
                future.set_result(None)
            else:
                sleeper = _AsyncSleeper(deadline, loop, future)
                self._async_sleepers.append(sleeper)
            self._condition.notify_all()
        try:
            await future
        finally:
            if not future.done() or future.cancelled():
                with self._condition:
                    self._async_sleepers = [s for s in self._async_sleepers if s.future is not future]

    @property
    def sleepers(self) -> int:
        """How many threads and tasks are parked in ``sleep``/``asleep`` right now."""
        with self._condition:
            return self._thread_sleepers + len(self._async_sleepers)

    def wait_for_sleepers(self, count: int, timeout: float = 5.0) -> None:
        """Block until ``count`` sleepers are parked (a synchronisation aid, not a sleep)."""
        with self._condition:
            ok = self._condition.wait_for(
                lambda: self._thread_sleepers + len(self._async_sleepers) >= count, timeout
            )
        if not ok:
            raise TimeoutError(
                f"expected {count} sleepers on the FakeClock within {timeout}s, saw {self.sleepers}"
            )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
