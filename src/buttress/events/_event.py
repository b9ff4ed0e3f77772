"""The event record, the handler type and the transport protocol (with the in-process transport)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from buttress.health_types import CheckResult

__all__ = ["Event", "EventHandler", "EventTransport", "MemoryTransport", "TransportInfo", "make_event"]


@dataclass(frozen=True, slots=True)
class Event:
    """One published event.

    ``time`` is wall-clock seconds since the epoch from the publishing bus's clock, ``origin`` the id of
    the bus that published it (so a process recognises its own events when they come back from another
    transport) and ``id`` is unique across buses and processes. Treat ``payload`` as read-only: every
    subscriber of an event sees the same mapping (a copy of what the publisher passed).
    """

    topic: str
    payload: Mapping[str, Any]
    time: float
    origin: str
    id: str


_new = object.__new__
_set_topic, _set_payload, _set_time, _set_origin, _set_id = (
    Event.__dict__[name].__set__ for name in ("topic", "payload", "time", "origin", "id")
)


def make_event(topic: str, payload: Mapping[str, Any], time: float, origin: str, id: str) -> Event:  # noqa: A002
    """``Event(...)`` for the publish hot path: fills the slots directly, skipping the frozen dataclass
    ``__init__``'s generic ``object.__setattr__`` per field (about twice as fast, same object)."""
    event: Event = _new(Event)
    _set_topic(event, topic)
    _set_payload(event, payload)
    _set_time(event, time)
    _set_origin(event, origin)
    _set_id(event, id)
    return event


EventHandler: TypeAlias = Callable[[Event], Awaitable[object]] | Callable[[Event], object]
"""A subscriber: a plain function (run in the subscription's own thread) or an ``async def`` function
(run as a task on the event loop that was running when it subscribed). Return values are ignored."""


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """What a transport reports about itself for health and logs (the cache's ``BackendInfo`` twin)."""

    name: str
    """``memory`` or ``redis``: the same as ``status()["transport"]``."""
    available: bool
    """False while it cannot reach its server and events are delivered in this process only."""
    detail: str = ""
    """Where it carries events (URL with the password masked, prefix), or why it is degraded."""


@runtime_checkable
class EventTransport(Protocol):
    """Carries events between processes. The bus always delivers to its own subscribers itself.

    The contract, checked for every transport by ``tests/conformance/test_event_transport_conformance.py``:

    - ``start(deliver)`` is called once, by the bus that owns the transport (one transport serves one
      bus), with the callback that hands events from other buses in for local delivery. ``deliver`` may
      be called from any thread; the bus drops events whose ``origin`` is its own id, but a transport
      should not hand them back (the bus already delivered them locally).
    - ``send(event)`` is called on the publisher's thread for every published event and must not block:
      queue it and return. It raises :class:`~buttress.errors.ValidationError` (field ``payload``) only
      for an event that can never be sent. Events from one bus reach every other bus in publish order.
    - ``close()`` is idempotent and stops background work; what is still queued may be dropped (counted)
      since the bus flushes before closing. ``status()`` keeps answering after close.
    - ``status()`` is a JSON-serialisable dict with at least ``transport`` (the name) and ``connected``
      (bool); the bus's ``stats()`` and the ops server show it.
    - ``info()`` and ``check()`` report for health like every backend (see ``ARCHITECTURE.md``).

    Outage policy: events are notifications, not durable work. While the server is unreachable a transport
    keeps the bus delivering locally, drops (and counts) what it cannot hold, reconnects by itself, and
    ``check()`` warns, never fails.
    """

    def start(self, deliver: Callable[[Event], None]) -> None: ...

    def send(self, event: Event) -> None: ...

    def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def info(self) -> TransportInfo:
        """Name, availability and where it carries events."""
        ...

    def check(self) -> CheckResult:
        """Pass while it carries events normally; warn (never fail) while it delivers locally only."""
        ...


class MemoryTransport:
    """In-process only: local delivery is the bus's own work, so this transport adds nothing."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        self._started = False

    def start(self, deliver: Callable[[Event], None]) -> None:
        self._started = True

    def send(self, event: Event) -> None:
        return None

    def close(self) -> None:
        self._started = False

    def status(self) -> dict[str, Any]:
        return {"transport": "memory", "connected": True}

    def info(self) -> TransportInfo:
        return TransportInfo("memory", available=True, detail="in-process: events stay in this process")

    def check(self) -> CheckResult:
        return CheckResult("pass", "memory event transport: events are delivered within this process")

    def __repr__(self) -> str:
        return "MemoryTransport()"
