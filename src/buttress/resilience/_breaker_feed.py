"""Breaker state pushed to every process: one subscriber per RedisState, each transition fanned out by name.

Every breaker script that changes a state publishes ``epoch * 8 + state`` on the channel named like the
breaker's state key (``<prefix>:{breaker:<name>}``). A :class:`BreakerFeed` PSUBSCRIBEs
``<prefix>:{breaker:*`` once per :class:`~buttress.resilience.RedisState` (one thread, one connection,
started when the first Redis breaker store joins) and hands each message to the stores of that name in
this process (:meth:`RedisBreakerStore.pushed`). When messages may have been lost (the connection
dropped, or was just re-established) every store is marked stale, so its next call re-reads Redis.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Protocol

from buttress._redis import PubSubConnections, Subscriber, execute, glob_escape

if TYPE_CHECKING:
    from buttress._redis import RedisConnection

__all__ = ["BreakerFeed"]


class _Listening(Protocol):
    def pushed(self, se: int) -> None: ...
    def stale(self) -> None: ...


class BreakerFeed:
    """This process's subscription to the breaker transitions under one key prefix."""

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        base = connection.prefix + ":{breaker:"  # a channel is named like the state key: <base><name>}
        self._base = base.encode()
        self._stores: dict[str, weakref.WeakSet[_Listening]] = {}
        self._lock = threading.Lock()
        self._settles: dict[bytes, threading.Event] = {}
        self.subscriber = Subscriber(
            PubSubConnections(connection.url, timeout=connection.timeout),
            glob_escape(base) + "*",
            self._on_message,
            self._on_gap,
            name="buttress-breaker-feed",
        )

    def add(self, name: str, store: _Listening) -> None:
        """Deliver ``name``'s transitions to ``store`` (held weakly) and make sure the thread runs."""
        with self._lock:
            self._stores.setdefault(name, weakref.WeakSet()).add(store)
        self.subscriber.start()

    def start(self) -> None:
        """Start listening unless this process already does (after a fork, the child starts its own)."""
        self.subscriber.start()

    def close(self) -> None:
        self.subscriber.close()
        self.subscriber.connections.disconnect()

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until every transition published before this call has reached this process's stores.

        Publishes a marker on the feed's own channel and waits for it to come back (Redis delivers one
        subscriber's messages in order). For tests and tools; False if it did not arrive in ``timeout``.
        """
        if not self.subscriber.subscribed.wait(timeout):
            return False
        token = uuid.uuid4().hex.encode()
        arrived = self._settles[token] = threading.Event()
        try:
            self._connection.call(execute, "PUBLISH", self._base, b"~" + token)
            return arrived.wait(timeout)
        finally:
            self._settles.pop(token, None)

    # -- the subscriber thread -------------------------------------------------------------------------

    def _on_message(self, channel: bytes, data: bytes) -> None:
        name = channel[len(self._base) : -1]  # without the hash tag's closing brace
        if not name:
            arrived = self._settles.get(data[1:])
            if arrived is not None:
                arrived.set()
            return
        with self._lock:
            stores = list(self._stores.get(name.decode(), ()))
        if stores:
            se = int(data)
            for store in stores:
                store.pushed(se)

    def _on_gap(self) -> None:
        with self._lock:
            every = [store for stores in self._stores.values() for store in list(stores)]
        for store in every:
            store.stale()
