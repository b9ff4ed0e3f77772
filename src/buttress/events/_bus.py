"""The event bus: publish never blocks and never runs a handler; every subscription has its own worker."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time as _time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from buttress._tally import count_value
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ButtressError, ValidationError
from buttress.events._event import Event, EventHandler, EventTransport, MemoryTransport, make_event
from buttress.events._patterns import compile_pattern, validate_topic
from buttress.events._subscription import Subscription, is_async_handler

__all__ = ["EventBus", "EventBusClosed"]

logger = logging.getLogger("buttress.events")

_MAX_ROUTES = 10_000  # distinct topics remembered before the route cache starts over


class EventBusClosed(ButtressError):
    """The bus was closed; nothing can be published to it or subscribed on it any more."""

    default_code = "event_bus_closed"
    default_status = 503
    title = "Event bus closed"


def _check_queue_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            f"queue_size must be a whole number >= 1 (events kept per subscriber), got {value!r}",
            field="queue_size",
        )
    return value


class EventBus:
    """Publish/subscribe by topic pattern, in-process or across processes through a transport.

    ``publish`` may be called from any thread and from async code: it copies the payload, stamps the
    event and appends it to the bounded queue of every matching subscription, then returns. Each
    subscription delivers in publish order from its own worker (a daemon thread for a sync handler, a
    task on the subscriber's event loop for an async one), so a slow or failing subscriber never delays
    the publisher or the other subscribers; when its queue is full the oldest event is dropped and
    counted. See :func:`buttress.events.create_event_bus` for the usual way to build one.
    """

    def __init__(
        self,
        transport: EventTransport | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        queue_size: int = 1000,
    ) -> None:
        self.id: str = uuid.uuid4().hex
        self._clock = clock
        self._now = _time.time if clock is SYSTEM_CLOCK else clock.time  # skip a Python-level call
        self._queue_size = _check_queue_size(queue_size)
        self._transport: EventTransport = transport if transport is not None else MemoryTransport()
        self._send = None if isinstance(self._transport, MemoryTransport) else self._transport.send
        self._lock = threading.Lock()
        self._subscriptions: tuple[Subscription, ...] = ()
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._seq = itertools.count(1)
        self._rejected = itertools.count()
        self._received = 0
        self._closed = False
        self._transport.start(self._receive)

    # -- properties ----------------------------------------------------------------------------------

    @property
    def transport(self) -> EventTransport:
        return self._transport

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subscriptions

    @property
    def published(self) -> int:
        """Events accepted by :meth:`publish` (with or without subscribers)."""
        return count_value(self._seq) - 1 - count_value(self._rejected)

    # -- publish -------------------------------------------------------------------------------------

    def publish(self, topic: str, payload: Mapping[str, Any] | None = None) -> None:
        """Publish ``payload`` under ``topic``; returns at once, handlers run later on their workers.

        Raises :class:`~buttress.errors.ValidationError` for a bad topic or payload (with the Redis
        transport, a payload that is not JSON-serialisable) and :class:`EventBusClosed` after close.
        """
        try:
            routes = self._routes.get(topic)
        except TypeError:  # unhashable: let validation explain
            routes = None
        if routes is None:
            routes = self._resolve(topic)
        send = self._send
        if not routes and send is None:
            if payload is not None and type(payload) is not dict and not isinstance(payload, Mapping):
                raise self._bad_payload(payload)
            next(self._seq)
            return
        if payload is None:
            data: dict[str, Any] = {}
        elif type(payload) is dict:
            data = payload.copy()
        elif isinstance(payload, Mapping):
            data = dict(payload)
        else:
            raise self._bad_payload(payload)
        event = make_event(topic, data, self._now(), self.id, f"{self.id}-{next(self._seq)}")
        if send is not None:
            try:
                send(event)
            except BaseException:
                next(self._rejected)
                raise
        for subscription in routes:
            subscription._offer(event)

    @staticmethod
    def _bad_payload(payload: object) -> ValidationError:
        return ValidationError(
            f"payload must be a mapping with string keys (for example a dict), got {type(payload).__name__}; "
            "wrap a single value as {'value': ...}",
            field="payload",
        )

    def _resolve(self, topic: str) -> tuple[Subscription, ...]:
        validate_topic(topic)
        with self._lock:
            self._check_open()
            matched = tuple(s for s in self._subscriptions if s._compiled.matches(topic))
            if len(self._routes) >= _MAX_ROUTES:
                self._routes = {}
            self._routes[topic] = matched
        return matched

    def _check_open(self) -> None:
        if self._closed:
            raise EventBusClosed(
                "this EventBus is closed: publish and subscribe on an open bus (close it only at shutdown; "
                "for the process-wide bus, reset_event_bus() then get_event_bus() gives a new one)",
                context={"bus": self.id},
            )

    def _receive(self, event: Event) -> None:
        """Deliver an event that arrived through the transport (from another bus) to local subscribers."""
        if event.origin == self.id or self._closed:
            return
        routes = self._routes.get(event.topic)
        if routes is None:
            try:
                routes = self._resolve(event.topic)
            except ButtressError as exc:
                logger.warning("ignored a remote event on topic %r: %s", event.topic, exc)
                return
        self._received += 1
        for subscription in routes:
            subscription._offer(event)

    # -- subscribe -----------------------------------------------------------------------------------

    def subscribe(
        self, pattern: str, handler: EventHandler, *, queue_size: int | None = None
    ) -> Subscription:
        """Call ``handler(event)`` for every event whose topic matches ``pattern``.

        ``*`` matches exactly one segment and ``**`` zero or more (``breaker.*``, ``http.**``, ``**``).
        A sync handler runs in the subscription's own daemon thread; an ``async def`` handler runs as a
        task on the event loop running now (so subscribe it from async code). ``queue_size`` bounds the
        events waiting for this subscriber (default: the bus's); when full, the oldest is dropped.
        """
        compiled = compile_pattern(pattern)
        if not callable(handler):
            raise ValidationError(
                f"handler must be a function taking the Event, got {type(handler).__name__}", field="handler"
            )
        size = self._queue_size if queue_size is None else _check_queue_size(queue_size)
        loop: asyncio.AbstractEventLoop | None = None
        if is_async_handler(handler):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise ValidationError(
                    f"async handler {getattr(handler, '__qualname__', handler)!r} needs a running event "
                    "loop: subscribe it from async code (its events are handled on that loop), or pass a "
                    "plain function, which gets its own thread",
                    field="handler",
                ) from None
        with self._lock:
            self._check_open()
            subscription = Subscription(compiled, handler, queue_size=size, on_close=self._remove, loop=loop)
            self._subscriptions = (*self._subscriptions, subscription)
            self._routes = {}
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions and not self._closed:
                self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)
                self._routes = {}

    # -- flush and close -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every subscription's queue is empty and its handler idle, and the transport has
        sent what it holds (when it can: a disconnected transport is not waited for).

        Returns False if ``timeout`` ran out first. From a handler, its own subscription is skipped. From
        async code whose loop runs async subscriptions, use :meth:`aflush` (this would deadlock).
        """
        blocking = [s for s in self._subscriptions if s._on_running_loop() and not s._is_drained()]
        if blocking:
            raise RuntimeError(
                f"EventBus.flush() would block the event loop that runs {len(blocking)} async "
                "subscription(s) with pending events; use 'await bus.aflush()' from async code"
            )
        deadline = None if timeout is None else _time.monotonic() + timeout
        while True:
            waited = False
            for subscription in self._subscriptions:
                if subscription._is_drained() or subscription._is_worker():
                    continue
                waited = True
                if not subscription._wait_drained(_remaining(deadline)):
                    return False
            transport_flush = getattr(self._transport, "flush", None)
            if callable(transport_flush) and not transport_flush(_remaining(deadline)):
                return False
            if not waited:
                return True

    async def aflush(self, timeout: float | None = 10.0) -> bool:  # noqa: ASYNC109 - mirrors flush()
        """:meth:`flush` for async code: waits in a worker thread, so this loop's subscribers keep running."""
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop accepting events, deliver what is queued (up to ``timeout``), then stop every worker and
        the transport. Idempotent. Async subscriptions on a loop running in this thread cannot be waited
        for here and lose their queued events: from async code use :meth:`aclose`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._routes = {}
            subscriptions = self._subscriptions
        deadline = None if timeout is None else _time.monotonic() + timeout
        for subscription in subscriptions:
            if not (subscription._on_running_loop() or subscription._is_worker()):
                subscription._wait_drained(_remaining(deadline))
        transport_flush = getattr(self._transport, "flush", None)
        if callable(transport_flush):
            transport_flush(_remaining(deadline))
        try:
            self._transport.close()
        finally:
            for subscription in subscriptions:
                subscription._stop()
            for subscription in subscriptions:
                subscription._join(_remaining(deadline))

    async def aclose(self, timeout: float | None = 5.0) -> None:  # noqa: ASYNC109 - mirrors close()
        """:meth:`close` for async code: drains this loop's async subscriptions, then awaits their tasks."""
        await asyncio.to_thread(self.close, timeout)
        loop = asyncio.get_running_loop()
        tasks = [
            s._task
            for s in self._subscriptions
            if s._task is not None and s._loop is loop and not s._task.done()
        ]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- observability -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for health checks and the ops server: totals, per subscription, and the transport."""
        subscriptions = [s.stats() for s in self._subscriptions]
        return {
            "id": self.id,
            "closed": self._closed,
            "published": self.published,
            "received": self._received,
            "delivered": sum(s["delivered"] for s in subscriptions),
            "failed": sum(s["failed"] for s in subscriptions),
            "dropped": sum(s["dropped"] for s in subscriptions),
            "pending": sum(s["pending"] for s in subscriptions),
            "subscriptions": subscriptions,
            "transport": self._transport.status(),
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._subscriptions)} subscriptions"
        return f"<EventBus {self.id[:8]} {type(self._transport).__name__} {state}>"


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - _time.monotonic())
