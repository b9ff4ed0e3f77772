"""Shared by the tiered tests: Redis buses, waiting for broadcasts, and the second process's program."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, cast

from buttress.events import Event, EventBus, RedisTransport, create_event_bus

WAIT = 5.0  # upper bound for a broadcast to reach another bus; tests wait on conditions, never sleep
TOPIC = "cache.invalidate"


def redis_bus(url: str, prefix: str) -> EventBus:
    """A Redis-transport bus whose listener is subscribed (so nothing published after this is missed)."""
    bus = create_event_bus("redis", redis_url=url, prefix=prefix)
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


class Cleared:
    """Waits for ``cache.l1.cleared`` from one tiered backend (its ``source``), with the reason."""

    def __init__(self, bus: EventBus, tiered: Any) -> None:
        self.reasons: list[str] = []
        self._source = tiered.source
        self._changed = threading.Condition()
        bus.subscribe("cache.l1.cleared", self._record)

    def _record(self, event: Event) -> None:
        if event.payload.get("source") == self._source:
            with self._changed:
                self.reasons.append(str(event.payload["reason"]))
                self._changed.notify_all()

    def wait(self, reason: str, timeout: float = WAIT) -> None:
        with self._changed:
            seen = self._changed.wait_for(lambda: reason in self.reasons, timeout)
        assert seen, f"L1 was not cleared for {reason!r} within {timeout}s (seen: {self.reasons})"


@dataclass(frozen=True)
class Shared:
    """What both processes share: the Redis URL, the cache key prefix and the bus channel prefix."""

    url: str
    key_prefix: str
    channel_prefix: str


def second_process(shared: Shared, keys: list[str], inbox: Any, outbox: Any) -> None:
    """Process 2: fill L1 with ``keys``, then report, after each invalidation process 1 announces, what
    its L1 still holds.

    Messages in: ``("expect", key)`` before each invalidation (the key it must drop). Messages out:
    ``("ready", held)`` once L1 holds the keys; per invalidation ``(outcome, key, when, held)`` with
    ``outcome`` "gone" or "still-served" and ``when`` from ``time.monotonic()`` (one clock for every
    process on a machine); ``("error", traceback)`` on any failure.
    """
    from buttress.cache._redis import RedisBackend  # lazy: tests that import this module run without it
    from buttress.cache._tiered import TieredBackend

    bus = redis_bus(shared.url, shared.channel_prefix)
    tiered = TieredBackend(RedisBackend(shared.url, prefix=shared.key_prefix), l1_ttl=60.0, bus=bus)
    try:
        arrivals = Arrivals(bus)
        for key in keys:
            assert tiered.get(key) is not None, f"process 1 did not write {key}"
        outbox.put(("ready", [key for key in keys if tiered.l1.peek(key) is not None]))
        for count in (1, 2):
            _, key = inbox.get(timeout=WAIT * 4)
            arrivals.wait(count)
            gone = tiered.get(key) is None and tiered.l1.peek(key) is None
            held = [k for k in keys if tiered.l1.peek(k) is not None]
            outbox.put(("gone" if gone else "still-served", key, time.monotonic(), held))
    except BaseException:
        outbox.put(("error", traceback.format_exc()))
    finally:
        tiered.close()
        bus.close()
