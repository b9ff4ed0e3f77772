"""Building buses from configuration, and the process-wide default bus."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.events._bus import EventBus
from buttress.events._event import EventHandler, EventTransport
from buttress.events._redis import RedisTransport
from buttress.events._subscription import Subscription

__all__ = ["create_event_bus", "get_event_bus", "publish", "reset_event_bus", "set_event_bus", "subscribe"]

_default: EventBus | None = None
_default_lock = threading.Lock()


def create_event_bus(
    transport: Literal["memory", "redis"] = "memory",
    *,
    redis_url: str | None = None,
    queue_size: int = 1000,
    prefix: str = "buttress:events",
    clock: Clock = SYSTEM_CLOCK,
) -> EventBus:
    """Build an :class:`EventBus`: ``"memory"`` for one process, ``"redis"`` to fan out across processes."""
    chosen: EventTransport | None
    if transport == "memory":
        chosen = None
    elif transport == "redis":
        if not redis_url:
            raise ValidationError(
                "the redis event transport needs a Redis URL: pass redis_url='redis://localhost:6379/0' "
                "(or set BUTTRESS_REDIS_URL), or use transport='memory' for a single process",
                field="redis_url",
            )
        chosen = RedisTransport(redis_url, prefix=prefix, clock=clock)
    else:
        raise ValidationError(f"transport must be 'memory' or 'redis', got {transport!r}", field="transport")
    return EventBus(chosen, clock=clock, queue_size=queue_size)


def get_event_bus() -> EventBus:
    """The process-wide bus, created on first use from ``buttress.config`` settings (``events.*``)."""
    global _default  # noqa: PLW0603 - the process-wide default is deliberately module state
    bus = _default
    if bus is not None:
        return bus
    with _default_lock:
        if _default is None:
            from buttress.config import get_settings  # noqa: PLC0415 - lazy: importing events needs no config

            settings = get_settings()
            events = settings.events
            _default = create_event_bus(
                events.transport,
                redis_url=settings.redis_url,
                queue_size=events.queue_size,
                prefix=events.channel_prefix,
            )
        return _default


def set_event_bus(bus: EventBus | None) -> EventBus | None:
    """Replace the process-wide bus (tests, apps that build their own); returns the previous one, unclosed."""
    global _default
    with _default_lock:
        previous, _default = _default, bus
    return previous


def reset_event_bus() -> None:
    """Close the process-wide bus, if one was created; the next :func:`get_event_bus` builds a new one."""
    previous = set_event_bus(None)
    if previous is not None:
        previous.close()


def publish(topic: str, payload: Mapping[str, Any] | None = None) -> None:
    """Publish on the process-wide bus (see :meth:`EventBus.publish`)."""
    get_event_bus().publish(topic, payload)


def subscribe(pattern: str, handler: EventHandler, *, queue_size: int | None = None) -> Subscription:
    """Subscribe on the process-wide bus (see :meth:`EventBus.subscribe`)."""
    return get_event_bus().subscribe(pattern, handler, queue_size=queue_size)
