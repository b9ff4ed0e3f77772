"""redis-py, imported through the ``redis`` extra, and the one connection policy every client gets.

The policy, chosen once for the cache, the resilience store and the event transport:

- **Timeout**: :data:`DEFAULT_TIMEOUT` (0.5 s) for connecting and for each reply. It is longer than any
  reply a healthy Redis gives (the slowest breaker script, a 500-command pipeline, a cross-zone round
  trip, a fork for a snapshot) and short enough that a Redis that hangs costs one caller half a second
  before the owner's outage policy takes over; the outage tracker then keeps every other call off the
  network until the next probe.
- **Pool**: a blocking pool of :data:`POOL_SIZE` connections per client; a call that waits
  :data:`POOL_WAIT` seconds for a free one counts as an outage, since a Redis that slow is better served
  locally.
- **Reconnect**: one immediate retry on a broken connection (a socket left over from a Redis that
  restarted), none after a timeout; after a failure the pool drops its idle sockets, so the next probe
  dials afresh instead of finding a dead socket. Pub/sub connections are never retried by redis-py:
  their owner's thread reconnects with backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from buttress._extras import require
from buttress._redis._url import topology

if TYPE_CHECKING:
    from types import ModuleType

    import redis

    from buttress._redis._cluster import ClusterProbe

__all__ = [
    "DEFAULT_TIMEOUT",
    "POOL_SIZE",
    "POOL_WAIT",
    "module",
    "ping",
    "plain_client",
    "pool_options",
]

DEFAULT_TIMEOUT: Final = 0.5
POOL_SIZE: Final = 50
POOL_WAIT: Final = 1.0

_FEATURE = "Redis support (cache, shared resilience state, the event transport)"


def module(name: str = "redis") -> ModuleType:
    """``redis`` or one of its submodules, or MissingExtra naming ``pip install 'buttress[redis]'``."""
    return require(name, "redis", _FEATURE)


def pool_options(timeout: float, max_connections: int, *, is_async: bool = False) -> dict[str, Any]:
    """Keyword arguments for a (sync or asyncio) ``BlockingConnectionPool.from_url``: the policy above."""
    exceptions = module("redis.exceptions")
    backoff = module("redis.backoff")
    retry = module("redis.asyncio.retry" if is_async else "redis.retry")
    return {
        "max_connections": max_connections,
        "timeout": POOL_WAIT,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry.Retry(backoff.NoBackoff(), 1, supported_errors=(exceptions.ConnectionError,)),
    }


def plain_client(url: str, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis | ClusterProbe:
    """A sync client that never retries, for probes that report rather than recover (health checks).

    On a cluster URL, a :class:`~buttress._redis._cluster.ClusterProbe` whose ``ping()`` asks every
    primary. Raises ValueError for a URL redis-py cannot parse.
    """
    if topology(url) == "cluster":
        from buttress._redis._cluster import ClusterProbe  # noqa: PLC0415 - cluster code loads only for a cluster URL

        return ClusterProbe(url, timeout)
    redis_module = module()
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": module("redis.retry").Retry(module("redis.backoff").NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if topology(url) == "sentinel":
        from buttress._redis._sentinel import sentinel_target  # noqa: PLC0415 - it builds on this module

        return redis_module.Redis.from_pool(sentinel_target(url).plain_pool(**options))  # type: ignore[no-any-return]
    client: redis.Redis = redis_module.Redis.from_url(url, **options)
    return client


def ping(url: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether the Redis at ``url`` answers a PING within ``timeout`` (one attempt, no exception)."""
    client = plain_client(url, timeout)
    try:
        return bool(client.ping())
    except (module("redis.exceptions").RedisError, module("redis.exceptions").RedisClusterException, OSError):
        return False
    finally:
        client.close()
