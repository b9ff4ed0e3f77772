"""Dedicated pub/sub connections: one factory for a sender and one for a listener.

Pub/sub needs connections of its own, outside any command pool: a subscribed connection can do nothing
else, and a sender that packs its own PUBLISH batches owns its socket. redis-py never retries them
(:data:`~buttress._redis._client.DEFAULT_TIMEOUT` bounds connecting and each reply); the owner's thread
reconnects with backoff on its own clock. The listener speaks RESP2 unless the URL asks otherwise:
redis-py parses it about 1.5x faster than RESP3, and every event on the prefix passes through it.

On a Redis Cluster (``redis+cluster://``) each connection goes to the first seed node that answers
(:class:`~buttress._redis._cluster.SeedRotation`): a plain PUBLISH reaches the subscribers of every node.
"""

from __future__ import annotations

from typing import Any

from buttress._redis._client import DEFAULT_TIMEOUT, module
from buttress._redis._sentinel import sentinel_target
from buttress._redis._url import check_url, invalid_url, mask_url, topology

__all__ = ["PubSubConnections"]


class PubSubConnections:
    """Makes the sender's and the listener's connections to the Redis at ``url``; never pools them."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, url_field: str = "url") -> None:
        check_url(url, url_field)
        redis_module = module()
        no_retry = module("redis.retry").Retry(module("redis.backoff").NoBackoff(), 0)
        options: dict[str, Any] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "retry": no_retry,  # the owner reconnects, with backoff on its clock
        }
        self.url = url
        self._pools: list[Any]
        if topology(url) == "cluster":
            from buttress._redis._cluster import SeedRotation, seed_pools  # noqa: PLC0415 - cluster code loads only for a cluster URL

            sender, listener = (
                SeedRotation(seed_pools(url, options)),
                SeedRotation(seed_pools(url, {"protocol": 2, **options})),
            )
            self._pools = [sender, listener]
            self.sender, self.listener = sender.connect, listener.connect  # type: ignore[method-assign]
        else:
            sentinel = sentinel_target(url, url_field) if topology(url) == "sentinel" else None
            pool = (
                redis_module.ConnectionPool.from_url
                if sentinel is None
                else lambda _, **kw: sentinel.plain_pool(**kw)
            )
            try:  # a Sentinel pool's connections ask the sentinels for the primary each time they connect
                self._sender = pool(url, **options)
                self._listener = pool(url, **{"protocol": 2, **options})
            except ValueError as exc:
                raise invalid_url(url, exc, url_field) from None
            self._pools = [self._sender, self._listener]
        self.label = mask_url(url)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"PubSubConnections({self.label!r})"

    def sender(self) -> Any:
        """A new connection for PUBLISH batches (``redis.Connection``; on a cluster already connected)."""
        return self._sender.make_connection()

    def listener(self) -> Any:
        """A new, unconnected RESP2 connection to PSUBSCRIBE on (``redis.Connection``; ditto)."""
        return self._listener.make_connection()

    def disconnect(self) -> None:
        """Close every connection made here."""
        for pool in self._pools:
            pool.disconnect()
