"""Shared by the tiered tests: Redis buses, waiting for broadcasts, and the second process's program."""

from __future__ import annotations

import threading
from typing import Any, cast

from buttress.events import Event, EventBus, RedisTransport, create_event_bus

WAIT = 5.0  # upper bound for a broadcast to reach another bus; tests wait on conditions, never sleep
TOPIC = "cache.invalidate"


def redis_bus(url: str, prefix: str) -> EventBus:
    """A Redis-transport bus whose listener is subscribed (so nothing published after this is missed)."""
    bus = create_event_bus("redis", redis_url=url, channel_prefix=prefix)
    if not cast(RedisTransport, bus.transport).wait_connected(WAIT * 4):
        bus.close()
        raise RuntimeError(f"the Redis event transport did not connect: {bus.transport.status()}")
    return bus


class Arrivals:
    """Counts ``cache.invalidate`` events reaching ``bus`` from other buses, and waits for them.

    Subscribed after the tiered backend, so once an event is seen here, the bus's :meth:`EventBus.flush`
    also waits for the tiered backend to have applied it.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.events: list[Event] = []
        self._changed = threading.Condition()
        bus.subscribe(TOPIC, self._record)

    def _record(self, event: Event) -> None:
        if event.origin == self.bus.id:
            return
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """Block until ``count`` remote events arrived and were applied; their payloads."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.events) >= count, timeout)
        assert arrived, f"only {len(self.events)} of {count} invalidations arrived within {timeout}s"
        assert self.bus.flush(timeout)
        return [dict(event.payload) for event in self.events[:count]]
