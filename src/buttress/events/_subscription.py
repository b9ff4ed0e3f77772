"""One subscriber: a bounded queue and its own delivery worker (a daemon thread or an asyncio task).

Publishers append under a short per-subscription lock and wake the worker only when it is idle; the
worker pops one event at a time and runs the handler outside the lock. A full queue drops its oldest
event. ``_drained`` is signalled whenever the worker goes idle, which is what ``flush`` waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

from buttress.events._event import Event, EventHandler
from buttress.events._patterns import Pattern

__all__ = ["Subscription", "is_async_handler"]

logger = logging.getLogger("buttress.events")


def is_async_handler(handler: object) -> bool:
    """True for ``async def`` functions, partials of them and objects with an ``async def __call__``."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - we want the method itself, not callable()
    )


def _handler_name(handler: object) -> str:
    module = getattr(handler, "__module__", None)
    name = getattr(handler, "__qualname__", None)
    if name is None:
        return repr(handler)
    return f"{module}.{name}" if module else str(name)


class Subscription:
    """A live subscription returned by :meth:`EventBus.subscribe`.

    Counters: ``delivered`` (the handler returned), ``failed`` (the handler raised; logged on the
    ``buttress.events`` logger), ``dropped`` (the queue was full and its oldest event was discarded) and
    ``pending`` (queued, not yet handled). :meth:`unsubscribe` (alias :meth:`close`) stops delivery at once
    and discards what is still queued; it is idempotent and may be called from inside the handler.
    """

    __slots__ = (
        "_closed",
        "_compiled",
        "_delivered",
        "_drained",
        "_dropped",
        "_failed",
        "_handler",
        "_has_work",
        "_idle",
        "_lock",
        "_loop",
        "_name",
        "_on_close",
        "_queue",
        "_queue_size",
        "_task",
        "_thread",
        "_wake_event",
    )

    def __init__(
        self,
        pattern: Pattern,
        handler: EventHandler,
        *,
        queue_size: int,
        on_close: Callable[[Subscription], None],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._compiled = pattern
        self._handler = handler
        self._name = _handler_name(handler)
        self._queue_size = queue_size
        self._on_close = on_close
        self._queue: deque[Event] = deque()
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._idle = True
        self._closed = False
        self._delivered = 0
        self._failed = 0
        self._dropped = 0
        self._thread: threading.Thread | None = None
        self._loop = loop
        self._task: asyncio.Task[None] | None = None
        self._wake_event: asyncio.Event | None = None
        if loop is not None:
            self._wake_event = asyncio.Event()
            self._task = loop.create_task(self._run_task(), name=f"buttress-events[{pattern.text}]")

    # -- public view ---------------------------------------------------------------------------------

    @property
    def pattern(self) -> str:
        return self._compiled.text

    @property
    def handler(self) -> EventHandler:
        return self._handler

    @property
    def is_async(self) -> bool:
        return self._loop is not None

    @property
    def queue_size(self) -> int:
        return self._queue_size

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def failed(self) -> int:
        return self._failed

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "handler": self._name,
            "kind": "async" if self.is_async else "sync",
            "queue_size": self._queue_size,
            "pending": self.pending,
            "delivered": self._delivered,
            "failed": self._failed,
            "dropped": self._dropped,
            "closed": self._closed,
        }

    def unsubscribe(self) -> None:
        """Stop delivery and discard queued events; safe to call twice or from the handler itself."""
        self._on_close(self)
        self._stop()

    close = unsubscribe

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pending={self.pending}"
        return f"<Subscription {self.pattern!r} -> {self._name} {state}>"

    # -- publisher side ------------------------------------------------------------------------------

    def _offer(self, event: Event) -> None:
        """Queue ``event`` (dropping the oldest if full) and wake the worker if it is idle. Never blocks."""
        lock = self._lock
        lock.acquire()  # not "with": acquire/release is about half the cost on the hot path
        try:
            if self._closed:
                return
            queue = self._queue
            if len(queue) >= self._queue_size:
                queue.popleft()
                self._dropped += 1
            queue.append(event)
            if self._idle:
                self._idle = False
                self._wake_locked()
        finally:
            lock.release()

    def _wake_locked(self) -> None:
        if self._loop is None:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run_thread, name=f"buttress-events[{self.pattern}]", daemon=True
                )
                self._thread.start()
            else:
                self._has_work.notify()
            return
        try:
            self._loop.call_soon_threadsafe(self._set_wake)
        except RuntimeError:  # the subscriber's event loop is closed: nobody can ever handle these
            self._abandon_locked()
            logger.warning(
                "async subscription %r (%s) stopped: its event loop is closed; "
                "subscribe again from a running loop",
                self.pattern,
                self._name,
            )

    def _set_wake(self) -> None:
        if self._wake_event is not None:
            self._wake_event.set()

    # -- worker side ---------------------------------------------------------------------------------

    def _run_thread(self) -> None:
        queue, lock, handler = self._queue, self._lock, self._handler
        while True:
            lock.acquire()  # not "with": this loop runs once per event
            try:
                while not queue:
                    if not self._idle:
                        self._idle = True
                        self._drained.notify_all()
                    if self._closed:
                        return
                    self._has_work.wait()
                event = queue.popleft()
            finally:
                lock.release()
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - a failing subscriber is logged and counted, never fatal
                self._failed += 1
                self._log_failure(event)
            else:
                self._delivered += 1

    async def _run_task(self) -> None:
        wake = cast(asyncio.Event, self._wake_event)
        handler = cast(Callable[[Event], Awaitable[object]], self._handler)
        queue = self._queue
        try:
            while True:
                event: Event | None = None
                with self._lock:
                    if queue:
                        event = queue.popleft()
                    else:
                        self._idle = True
                        self._drained.notify_all()
                        if self._closed:
                            return
                if event is None:
                    await wake.wait()
                    wake.clear()
                    continue
                try:
                    await handler(event)
                except Exception:  # noqa: BLE001 - a failing subscriber is logged and counted, never fatal
                    self._failed += 1
                    self._log_failure(event)
                else:
                    self._delivered += 1
        finally:
            with self._lock:
                self._abandon_locked()

    def _log_failure(self, event: Event) -> None:
        logger.exception(
            "event handler %s failed on topic %r (event %s, subscription %r); delivery continues",
            self._name,
            event.topic,
            event.id,
            self.pattern,
            extra={"topic": event.topic, "event_id": event.id},
        )

    # -- lifecycle -----------------------------------------------------------------------------------

    def _abandon_locked(self) -> None:
        self._closed = True
        self._queue.clear()
        self._idle = True
        self._drained.notify_all()

    def _stop(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._abandon_locked()
            if self._thread is not None:
                self._has_work.notify()
            elif self._loop is not None:
                with contextlib.suppress(RuntimeError):  # loop already closed: the task is gone with it
                    self._loop.call_soon_threadsafe(self._set_wake)

    def _is_worker(self) -> bool:
        """True when called from this subscription's own worker (thread, or task on its loop)."""
        if self._thread is not None:
            return threading.current_thread() is self._thread
        if self._task is not None:
            try:
                return asyncio.current_task() is self._task
            except RuntimeError:
                return False
        return False

    def _on_running_loop(self) -> bool:
        """True for an async subscription whose loop runs in the calling thread (blocking would deadlock)."""
        if self._loop is None:
            return False
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _wait_drained(self, timeout: float | None) -> bool:
        """Block until the queue is empty and the handler is idle (or the subscription is closed)."""
        with self._lock:
            return self._drained.wait_for(lambda: self._idle or self._closed, timeout)

    def _is_drained(self) -> bool:
        return self._idle or self._closed

    def _join(self, timeout: float | None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
