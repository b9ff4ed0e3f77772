"""Building buses from configuration, and the process-wide default bus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.container import get_container
from buttress.errors import ValidationError
from buttress.events._bus import EventBus
from buttress.events._event import EventHandler, EventTransport
from buttress.events._redis import RedisTransport
from buttress.events._subscription import Subscription

__all__ = ["create_event_bus", "get_event_bus", "publish", "reset_event_bus", "set_event_bus", "subscribe"]


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
    """The process-wide bus: the default container's :class:`EventBus`, built from settings (``events.*``)."""
    return get_container().resolve(EventBus)


def set_event_bus(bus: EventBus | None) -> EventBus | None:
    """Make ``bus`` the process-wide one (``None``: back to the one built from settings).

    The default container adopts ``bus`` (:func:`reset_event_bus` and ``reset_container()`` close it);
    the previous one, if any, is returned unclosed and is the caller's again.
    """
    return get_container().replace(EventBus, bus)


def reset_event_bus() -> None:
    """Close the process-wide bus, if one was created; the next :func:`get_event_bus` builds a new one."""
    get_container().reset(EventBus)


def publish(topic: str, payload: Mapping[str, Any] | None = None) -> None:
    """Publish on the process-wide bus (see :meth:`EventBus.publish`)."""
    get_event_bus().publish(topic, payload)


def subscribe(pattern: str, handler: EventHandler, *, queue_size: int | None = None) -> Subscription:
    """Subscribe on the process-wide bus (see :meth:`EventBus.subscribe`)."""
    return get_event_bus().subscribe(pattern, handler, queue_size=queue_size)
