"""The async clients' connection pool: redis-py's blocking pool, minus its cost when nothing has to wait.

redis-py's ``redis.asyncio.BlockingConnectionPool`` takes an ``asyncio.Condition`` and arms an
``asyncio.timeout`` for every command, even when a connection is free: about 20 % of a GET round trip on
loopback. :func:`async_pool` builds a subclass that keeps its guarantees (at most ``max_connections``
connections; a command that finds none free waits up to the pool timeout, then fails with
"No connection available", which the connection counts as an outage) and takes a free connection the way
the plain ``ConnectionPool`` does. Only a command that must wait goes through the Condition, and a release
notifies it only when someone waits.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from buttress._redis._client import module

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["async_pool"]


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
