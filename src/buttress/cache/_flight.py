"""Single-flight: concurrent misses on one key run the function once and share its result.

Threads wait on an event; tasks await a future of their own event loop. The table lock is held only to
find or register the call in progress, never while the function runs. When the leader fails, every waiter
gets the same exception; when a leading task is cancelled, its waiters elect a new leader instead of
inheriting the cancellation.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["AsyncSingleFlight", "SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class SingleFlight:
    """One call per key at a time across the threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[Any]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def run(self, key: str, fn: Callable[[], T]) -> T:
        """``fn()``, or the result of the call already running for ``key``."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.value  # type: ignore[return-value]
        try:
            call.value = value = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return value


_Calls = dict[str, "asyncio.Future[Any]"]


class AsyncSingleFlight:
    """One call per key at a time across the tasks of each event loop."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Calls]
        self._by_loop = weakref.WeakKeyDictionary()

    def in_flight(self) -> int:
        return sum(len(calls) for calls in self._by_loop.values())

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()``, or the result of the call already running for ``key`` on this loop."""
        loop = asyncio.get_running_loop()
        calls = self._by_loop.get(loop)
        if calls is None:
            calls = self._by_loop[loop] = {}
        while (running := calls.get(key)) is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # we were cancelled, not the leader
        future: asyncio.Future[Any] = loop.create_future()
        calls[key] = future
        try:
            value = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "exception was never retrieved" when nobody waited
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if calls.get(key) is future:
                del calls[key]
