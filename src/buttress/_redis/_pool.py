"""The clients' connection pools: redis-py's blocking pools, minus their cost when nothing has to wait.

A blocking pool is what the Redis layer's policy asks for: at most ``max_connections`` connections, and a
command that finds none free waits up to the pool timeout, then fails with "No connection available",
which the connection counts as an outage. redis-py's own pay for that wait on every command, even when a
connection is free: ``redis.asyncio.BlockingConnectionPool`` takes an ``asyncio.Condition`` and arms an
``asyncio.timeout`` (about 20 % of a GET round trip on loopback), the sync one goes through a
``queue.LifoQueue`` and its two Conditions. The pools here keep those guarantees and take a free connection
the way redis-py's plain ``ConnectionPool`` does; only a command that must wait goes through a Condition,
and a release notifies one only when someone waits.

- :func:`async_pool`: a ``redis.asyncio.BlockingConnectionPool`` whose free path is the plain pool's.
- :func:`sync_pool`: a plain ``redis.ConnectionPool`` that, instead of raising "Too many connections",
  waits for a release up to ``timeout`` seconds; :func:`waiting_pool` makes them for a cluster's nodes.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from buttress._redis._client import module

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["async_pool", "sync_pool", "waiting_pool"]


@functools.cache
def _pool_class() -> type[redis.asyncio.BlockingConnectionPool]:
    """The subclass, made on first use: redis-py is an optional extra."""
    connection = module("redis.asyncio.connection")
    blocking, plain = connection.BlockingConnectionPool, connection.ConnectionPool
    too_many = module("redis.exceptions").MaxConnectionsError

    class WaitFreeBlockingPool(blocking):  # type: ignore[misc, valid-type]
        """``BlockingConnectionPool`` that waits on its Condition only when no connection is free."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._waiters = 0

        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            if not self._waiters and not self._in_maintenance and self.can_get_connection():
                try:
                    return await plain.get_connection(self)
                except too_many:  # taken by another task while this one waited for the pool's lock
                    pass
            self._waiters += 1
            try:
                return await blocking.get_connection(self)
            finally:
                self._waiters -= 1

        async def release(self, connection: Any) -> None:
            await plain.release(self, connection)
            if self._waiters:
                async with self._condition:
                    self._condition.notify()

    return WaitFreeBlockingPool


def async_pool(url: str, **options: Any) -> redis.asyncio.BlockingConnectionPool:
    """A pool for ``url`` with ``options`` (``pool_options(..., is_async=True)``), as described above."""
    return _pool_class().from_url(url, **options)


@functools.cache
def _sync_pool_class() -> type[redis.ConnectionPool]:
    """The sync subclass, made on first use."""
    plain = module("redis.connection").ConnectionPool
    exceptions = module("redis.exceptions")
    too_many, unavailable = exceptions.MaxConnectionsError, exceptions.ConnectionError

    class WaitingConnectionPool(plain):  # type: ignore[misc, valid-type]
        """``ConnectionPool`` that waits ``timeout`` seconds for a release when every connection is busy."""

        def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)  # calls reset()
            self.timeout = timeout

        def reset(self) -> None:  # also in a forked child, whose copy of the Condition may be held
            super().reset()
            self._released = threading.Condition(threading.Lock())
            self._waiters = 0

        def _has_room(self) -> bool:
            return bool(self._available_connections) or self._created_connections < self.max_connections

        def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            deadline = None
            while True:
                try:
                    return plain.get_connection(self)
                except too_many:  # every connection is in use: wait for a release
                    pass
                if deadline is None:
                    deadline = time.monotonic() + self.timeout
                with self._released:
                    self._waiters += 1
                    try:
                        while not self._has_room():
                            left = deadline - time.monotonic()
                            if left <= 0:
                                raise unavailable("No connection available.")
                            self._released.wait(left)
                    finally:
                        self._waiters -= 1

        def release(self, connection: Any) -> None:
            plain.release(self, connection)
            if self._waiters:
                with self._released:
                    self._released.notify()

    return WaitingConnectionPool


def sync_pool(url: str, **options: Any) -> redis.ConnectionPool:
    """A sync pool for ``url`` with ``options`` (``pool_options(...)``), as described above."""
    return _sync_pool_class().from_url(url, **options)


def waiting_pool(timeout: float) -> Callable[..., redis.ConnectionPool]:
    """A factory of the sync pools above that wait ``timeout`` seconds (a cluster node's pool)."""
    return functools.partial(_sync_pool_class(), timeout=timeout)
