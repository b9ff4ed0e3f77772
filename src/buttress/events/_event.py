"""The event record, the handler type and the transport protocol (with the in-process transport)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["Event", "EventHandler", "EventTransport", "MemoryTransport", "make_event"]


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


@runtime_checkable
class EventTransport(Protocol):
    """Carries events between processes. The bus always delivers to its own subscribers itself.

    ``start`` is called once by the bus with the callback that hands remote events in for local
    delivery; ``send`` is called on the publisher's thread for every published event and must not block
    (queue it and return; raise :class:`~buttress.errors.ValidationError` only for an event that can
    never be sent); ``status`` feeds health checks and the ops server.
    """

    def start(self, deliver: Callable[[Event], None]) -> None: ...

    def send(self, event: Event) -> None: ...

    def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


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

    def __repr__(self) -> str:
        return "MemoryTransport()"
