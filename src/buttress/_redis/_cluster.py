"""Redis Cluster: the clients a ``redis+cluster://`` URL gets, under the layer's one connection policy.

A cluster URL names seed nodes (``redis+cluster://[:password@]host:port[,host:port...]``); redis-py's
``RedisCluster`` (sync) and ``redis.asyncio.cluster.RedisCluster`` (one per event loop) read the
topology from the first seed that answers and route each command by its key's slot. The policy is the
standalone one where it can be:

- **Timeout**: the connection's timeout for connecting and for each reply, on every node.
- **Pool**: ``max_connections`` per node; the sync client's pools wait :data:`POOL_WAIT` for a free
  connection, as a standalone client's do (the asyncio cluster client's cannot, so at most
  ``max_connections`` of its calls are in flight at once and the next waits as long).
- **Retry**: one. A command that meets a dead node (refused, reset, timed out) makes redis-py re-read
  the topology and try once more, so a call right after a promotion reaches the new primary; a second
  failure is an outage (:data:`~buttress._redis.UNAVAILABLE`) and the outage tracker keeps other calls
  off the network until its next probe. ``MOVED``/``ASK`` redirections are followed and patch the slot
  table (a full re-read every few); a ``CLUSTERDOWN``/``MASTERDOWN`` reply counts as an outage too.
- **Lazy**: nothing connects before the first command (as with one server), so a cluster that is down
  when the owner is built is an outage, not an exception (:func:`cluster_errors`).

The wrappers also make the commands the owners send work across slots: ``MGET``/``UNLINK``/``DEL``/
``EXISTS``/``TOUCH`` with keys in several slots are split per slot into one pipeline and their replies
merged, ``SCAN`` walks every primary in turn behind one cursor (node index in the high bits), and a bare
``PING`` (an outage probe) asks every primary, so a probe passes only once every slot is served again.

Pub/sub (:class:`SeedRotation`) and health checks (:class:`ClusterProbe`) get their own, smaller pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from buttress._redis._client import POOL_WAIT, module
from buttress._redis._pool import waiting_pool
from buttress._redis._url import hosts

__all__ = [
    "AsyncClusterClient",
    "ClusterClient",
    "ClusterProbe",
    "SeedRotation",
    "cluster_errors",
    "seed_nodes",
    "seed_pools",
    "split_url",
]

_MULTI_KEY: Final = frozenset({"MGET", "UNLINK", "DEL", "EXISTS", "TOUCH"})
_NODE_SHIFT: Final = 64  # a SCAN cursor is (index of the primary << 64) | that primary's own cursor
_RETRIES: Final = 1


def seed_nodes(url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each seed node in a cluster URL (port 6379 when left out)."""
    nodes = []
    for address in hosts(url):
        parts = urlsplit(f"redis://{address}")
        nodes.append((parts.hostname or "127.0.0.1", parts.port or 6379))
    return nodes


def split_url(url: str) -> dict[str, Any]:
    """The connection options a cluster URL carries: ``username``, ``password``, ``ssl``."""
    parts = urlsplit(url)
    options: dict[str, Any] = {"ssl": parts.scheme.lower().startswith("rediss")}
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    if userinfo:
        user, _, password = userinfo.partition(":")
        options["username"] = unquote(user) or None
        options["password"] = unquote(password) or None
    return options


def cluster_errors() -> tuple[type[BaseException], ...]:
    """Replies and failures that mean "this part of the cluster cannot serve now" (an outage).

    ``RedisClusterException`` is redis-py's "no seed node answers" and "no slot table"; it is also its
    "keys in several slots", which the wrappers here never send, so it counts as an outage (logged
    through the owner's ``on_down`` with its message) rather than raising into every caller.
    """
    exceptions = module("redis.exceptions")
    return (
        exceptions.ClusterDownError,  # CLUSTERDOWN, and MASTERDOWN (a subclass)
        exceptions.TryAgainError,
        exceptions.RedisClusterException,  # SlotNotCoveredError and "cannot be connected" among them
    )


def _options(
    url: str, timeout: float, max_connections: int, *, is_async: bool, retries: int = _RETRIES
) -> dict[str, Any]:
    retry = module("redis.asyncio.retry" if is_async else "redis.retry")
    return {
        **split_url(url),
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "max_connections": max_connections,
        "retry": retry.Retry(module("redis.backoff").NoBackoff(), retries),
    }


def _split(cluster: Any, args: tuple[Any, ...]) -> tuple[Any, dict[int, list[Any]]] | None:
    """For a multi-key command whose keys span slots: a pipeline of one command per slot, and the keys
    of each; None for any other command (it goes to redis-py as it is)."""
    name = str(args[0]).upper()
    if name not in _MULTI_KEY or len(args) <= 2:
        return None
    key_slot = module("redis.crc").key_slot
    groups: dict[int, list[Any]] = {}
    for key in args[1:]:
        groups.setdefault(key_slot(key.encode() if isinstance(key, str) else key), []).append(key)
    if len(groups) == 1:
        return None
    pipe = cluster.pipeline()
    for group in groups.values():
        pipe.execute_command(name, *group)
    return pipe, groups


def _merge(args: tuple[Any, ...], groups: dict[int, list[Any]], replies: list[Any]) -> Any:
    """The reply the command would have had on one server: MGET's values in order, else the sum."""
    if str(args[0]).upper() != "MGET":
        return sum(replies)
    keys = args[1:]
    found = {
        key: value
        for group, reply in zip(groups.values(), replies, strict=True)
        for key, value in zip(group, reply, strict=True)
    }
    return [found[key] for key in keys]


def _scan_args(client: Any, args: tuple[Any, ...]) -> tuple[list[Any], int, int, tuple[Any, ...]]:
    primaries = sorted(client.get_primaries(), key=lambda node: node.name)
    cursor = int(args[1])
    index, own = cursor >> _NODE_SHIFT, cursor & ((1 << _NODE_SHIFT) - 1)
    return primaries, index, own, args[2:]


def _scan_reply(primaries: list[Any], index: int, reply: Any) -> tuple[int, list[Any]]:
    cursors, keys = reply
    own = int(next(iter(cursors.values()))) if isinstance(cursors, dict) else int(cursors)
    if own == 0:
        index += 1
        return (index << _NODE_SHIFT if index < len(primaries) else 0), keys
    return (index << _NODE_SHIFT) | own, keys


class ClusterClient:
    """The sync ``RedisCluster`` behind a cluster URL, built on first use; see the module docstring."""

    def __init__(self, url: str, timeout: float, max_connections: int, *, retries: int = _RETRIES) -> None:
        options = _options(url, timeout, max_connections, is_async=False, retries=retries)
        (host, port), *others = seed_nodes(url)
        scheme = "rediss" if options.pop("ssl") else "redis"
        # Given a URL, redis-py builds each node's pool from connection_pool_class: the layer's waiting
        # pool (:func:`~buttress._redis._pool.waiting_pool`), as a standalone client has.
        self._make: Callable[[], Any] = lambda: module("redis.cluster").RedisCluster(
            url=f"{scheme}://{host}:{port}",
            startup_nodes=[module("redis.cluster").ClusterNode(*node) for node in others],
            connection_pool_class=waiting_pool(POOL_WAIT),
            **options,
        )
        self._cluster: Any = None
        self._lock = threading.Lock()

    def cluster(self) -> Any:
        """The ``redis.cluster.RedisCluster`` (read the topology now if not yet done)."""
        cluster = self._cluster
        if cluster is None:
            with self._lock:
                if self._cluster is None:
                    self._cluster = self._make()
                cluster = self._cluster
        return cluster

    def execute_command(self, *args: Any) -> Any:
        cluster = self.cluster()
        split = _split(cluster, args)
        if split is not None:
            return _merge(args, split[1], split[0].execute())
        if str(args[0]).upper() == "SCAN":
            primaries, index, own, rest = _scan_args(cluster, args)
            if index >= len(primaries):
                return 0, []
            reply = cluster.execute_command("SCAN", own, *rest, target_nodes=primaries[index])
            return _scan_reply(primaries, index, reply)
        if args == ("PING",):  # an outage probe: the cluster is back when every primary answers
            return cluster.execute_command("PING", target_nodes=cluster.PRIMARIES)
        return cluster.execute_command(*args)

    def pipeline(self, transaction: bool = False) -> Any:
        """A non-transactional cluster pipeline (each command routed by its key)."""
        return self.cluster().pipeline()

    def script_load(self, source: str) -> Any:
        """``SCRIPT LOAD`` on every primary (a promoted replica has none of the scripts)."""
        return self.cluster().script_load(source)

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()


class AsyncClusterClient:
    """The ``redis.asyncio.cluster.RedisCluster`` of one event loop; it reads the topology on first use.

    redis-py's asyncio cluster pools cannot wait for a free connection: past ``max_connections`` calls in
    flight to one node, a call fails (MaxConnectionsError), which would be an outage of the whole cluster
    for a mere burst (an ``asyncio.gather`` of 51 reads). So at most ``max_connections`` calls are in
    flight here at once (each uses at most one connection per node); the next waits up to
    :data:`POOL_WAIT` for one to end, as with a standalone pool, and past that counts as an outage.
    """

    def __init__(self, url: str, timeout: float, max_connections: int) -> None:
        cluster_module = module("redis.asyncio.cluster")
        self._cluster = cluster_module.RedisCluster(
            startup_nodes=[cluster_module.ClusterNode(host, port) for host, port in seed_nodes(url)],
            **_options(url, timeout, max_connections, is_async=True),
        )
        self._in_flight = asyncio.Semaphore(max_connections)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One of the ``max_connections`` places in flight (no suspension while one is free)."""
        if self._in_flight.locked():
            try:
                await asyncio.wait_for(self._in_flight.acquire(), POOL_WAIT)
            except TimeoutError:
                raise module("redis.exceptions").ConnectionError(
                    f"no free connection within {POOL_WAIT} s"
                ) from None
        else:
            await self._in_flight.acquire()
        try:
            yield
        finally:
            self._in_flight.release()

    async def execute_command(self, *args: Any) -> Any:
        async with self._turn():
            return await self._execute(*args)

    async def _execute(self, *args: Any) -> Any:
        cluster = self._cluster
        if cluster._initialize:  # read the topology first: commands racing the first read lose their socket
            await cluster.initialize()  # (and SCAN and PING need the primaries known)
        split = _split(cluster, args)
        if split is not None:
            return _merge(args, split[1], await split[0].execute())
        if str(args[0]).upper() == "SCAN":
            primaries, index, own, rest = _scan_args(cluster, args)
            if index >= len(primaries):
                return 0, []
            reply = await cluster.execute_command("SCAN", own, *rest, target_nodes=primaries[index])
            return _scan_reply(primaries, index, reply)
        if args == ("PING",):
            return await cluster.execute_command("PING", target_nodes=cluster.PRIMARIES)
        return await cluster.execute_command(*args)

    def pipeline(self, transaction: bool = False) -> _AsyncPipeline:
        return _AsyncPipeline(self._cluster.pipeline(), self)

    async def script_load(self, source: str) -> Any:
        async with self._turn():
            return await self._cluster.script_load(source)

    async def aclose(self) -> None:
        await self._cluster.aclose()


class _AsyncPipeline:
    """A cluster pipeline whose ``execute`` takes a place in flight (:class:`AsyncClusterClient`)."""

    def __init__(self, pipe: Any, client: AsyncClusterClient) -> None:
        self._pipe = pipe
        self._client = client

    def execute_command(self, *args: Any) -> _AsyncPipeline:
        self._pipe.execute_command(*args)
        return self

    async def execute(self) -> Any:
        async with self._client._turn():
            return await self._pipe.execute()


class ClusterProbe:
    """A health check's view of a cluster: PING every primary, one attempt, nothing retried."""

    def __init__(self, url: str, timeout: float) -> None:
        self._client = ClusterClient(url, timeout, 2, retries=0)

    def ping(self) -> bool:
        """True when every primary answers (a primary down is a part of the keyspace unserved)."""
        cluster = self._client.cluster()
        return bool(cluster.ping(target_nodes=cluster.PRIMARIES))

    def close(self) -> None:
        self._client.close()


def seed_pools(url: str, options: dict[str, Any]) -> list[Any]:
    """One never-used ``redis.ConnectionPool`` per seed node, to make raw connections from."""
    redis_module = module()
    settings = {**options, **split_url(url)}
    if settings.pop("ssl"):
        settings["connection_class"] = redis_module.SSLConnection
    return [redis_module.ConnectionPool(host=host, port=port, **settings) for host, port in seed_nodes(url)]


class SeedRotation:
    """Connections to the first seed node that answers, starting from the last one that did.

    Plain ``PUBLISH``/``PSUBSCRIBE`` work on any node of a cluster (a message is forwarded to every
    node), so a pub/sub connection needs just one live node; a dead seed costs one refused connect.
    """

    def __init__(self, pools: list[Any]) -> None:
        self._pools = pools
        self._next = 0

    def connect(self) -> Any:
        """A connected connection to a live seed; the last seed's error when none answers."""
        error: Exception = module("redis.exceptions").ConnectionError("no seed node")
        for step in range(len(self._pools)):
            index = (self._next + step) % len(self._pools)
            connection = self._pools[index].make_connection()
            try:
                connection.connect()
            except Exception as exc:  # noqa: BLE001 - try the next seed; the last error is raised
                error = exc
                continue
            self._next = index
            return connection
        raise error

    def disconnect(self) -> None:
        for pool in self._pools:
            pool.disconnect()
