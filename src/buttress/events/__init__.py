"""Publish/subscribe by topic pattern, in one process or across processes through Redis.

::

    from buttress.events import EventBus

    with EventBus() as bus:
        bus.subscribe("breaker.*", lambda event: print(event.topic, event.payload))
        bus.publish("breaker.opened", {"name": "payments"})
        bus.flush()

``publish`` never blocks and never runs a handler: each subscription has a bounded queue (the oldest
event is dropped when it is full) and its own worker, a daemon thread for a plain function or a task on
the subscriber's event loop for an ``async def`` handler. Patterns are dot-separated; ``*`` matches one
segment, ``**`` any number (``http.**`` matches ``http`` and ``http.client.retry``).

With ``create_event_bus("redis", redis_url=...)`` every bus on that Redis (and channel prefix) receives
every event; the publishing process delivers its own subscribers directly and ignores the echo.
"""

from buttress._lazy import lazy_exports

TYPE_CHECKING = False  # see buttress/__init__.py: importing typing would cost more than this package
if TYPE_CHECKING:
    from buttress.events._bus import EventBus, EventBusClosed
    from buttress.events._default import (
        create_event_bus,
        get_event_bus,
        publish,
        reset_event_bus,
        set_event_bus,
        subscribe,
    )
    from buttress.events._event import Event, EventHandler, EventTransport, MemoryTransport, TransportInfo
    from buttress.events._patterns import Pattern, compile_pattern, validate_topic
    from buttress.events._provide import health_checks, register_services
    from buttress.events._quiet import publish_quietly
    from buttress.events._redis import RedisTransport
    from buttress.events._subscription import Subscription

# Loaded on first use: RedisTransport (redis-py, the [redis] extra) only when it is asked for.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["EventBus", "EventBusClosed"], "buttress.events._bus"),
        **dict.fromkeys(
            ["create_event_bus", "get_event_bus", "publish", "reset_event_bus", "set_event_bus", "subscribe"],
            "buttress.events._default",
        ),
        **dict.fromkeys(
            ["Event", "EventHandler", "EventTransport", "MemoryTransport", "TransportInfo"],
            "buttress.events._event",
        ),
        **dict.fromkeys(["Pattern", "compile_pattern", "validate_topic"], "buttress.events._patterns"),
        **dict.fromkeys(["health_checks", "register_services"], "buttress.events._provide"),
        "publish_quietly": "buttress.events._quiet",
        "RedisTransport": "buttress.events._redis",
        "Subscription": "buttress.events._subscription",
    },
)

__all__ = [
    "Event",
    "EventBus",
    "EventBusClosed",
    "EventHandler",
    "EventTransport",
    "MemoryTransport",
    "Pattern",
    "RedisTransport",
    "Subscription",
    "TransportInfo",
    "compile_pattern",
    "create_event_bus",
    "get_event_bus",
    "health_checks",
    "publish",
    "publish_quietly",
    "register_services",
    "reset_event_bus",
    "set_event_bus",
    "subscribe",
    "validate_topic",
]
