"""Redis Sentinel: the primary of a service, asked from its sentinels each time a connection is made.

``redis+sentinel://[:password@]host:port[,host:port...]/<service>[/<db>][?sentinel_password=...]`` names
the sentinels (port 26379 when left out), the service they monitor and the database. The password is the
data nodes'; ``sentinel_password`` is the sentinels' own (their ``requirepass``); other query options are the
data connections', as in a ``redis://`` URL. ``rediss+sentinel://`` speaks TLS to the data nodes; the
sentinels are asked in plain TCP.

The clients are redis-py's (``redis.sentinel``, ``redis.asyncio.sentinel``) under the layer's policy
(:mod:`buttress._redis._client`): the timeout bounds each sentinel query and each connect to and reply from a
data node, and the command pools are the layer's own (:mod:`buttress._redis._pool`: the size limit, the wait
for a free connection, the free path without a Condition) mixed into a Sentinel pool. A connection asks the
sentinels for the primary when it connects, so after a failover the first reconnect reaches the new primary.
A planned failover leaves the old primary up and writable until Sentinel demotes it (about 10 s), so a busy
pool or pub/sub connection also asks every :data:`RECHECK` seconds and drops what is connected elsewhere;
one still open to a demoted primary gets ``READONLY``, which redis-py turns into a ConnectionError (an
outage, or a reconnect by redis-py's one retry). Closing a pool also closes its sentinel clients.
"""

from __future__ import annotations

import functools
import re
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from buttress._redis._client import module
from buttress._redis._pool import _pool_class, _sync_pool_class
from buttress._redis._url import hosts, invalid_url, mask_url
from buttress.errors import ValidationError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["SENTINEL_EXAMPLE", "SENTINEL_PORT", "SentinelTarget", "sentinel_target", "service_path"]

SENTINEL_PORT: Final = 26379
RECHECK: Final = 1.0
"""Seconds between two checks, by a busy pool or pub/sub connection, that the primary has not moved."""
_RECHECK_AFTER_FAILURE: Final = 10 * RECHECK  # the sentinels did not answer: bother them less
SENTINEL_EXAMPLE: Final = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"
_SERVICE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class SentinelTarget:
    """A checked Sentinel URL: the sentinels, the service, and the options of the data connections.

    Each ``*_pool`` method makes a pool (with a Sentinel client of its own) whose connections go to the
    service's current primary; ``options`` are :func:`~buttress._redis._client.pool_options` or the pub/sub
    connections' options.
    """

    def __init__(
        self,
        url: str,
        sentinels: list[tuple[str, int]],
        service: str,
        data_options: dict[str, Any],
        sentinel_password: str | None,
        *,
        tls: bool,
    ) -> None:
        self.label = mask_url(url)
        self.sentinels = sentinels
        self.service = service
        self.data_options = data_options
        self.sentinel_password = sentinel_password
        self.tls = tls

    def __repr__(self) -> str:
        return f"SentinelTarget({self.label!r})"

    def _sentinel_options(self, options: dict[str, Any], *, is_async: bool) -> dict[str, Any]:
        """The sentinels' connections: the data timeout, no retry (the next sentinel is the retry)."""
        retry = module("redis.asyncio.retry" if is_async else "redis.retry")
        timeout = options.get("socket_timeout")
        return {
            "socket_timeout": timeout,
            "socket_connect_timeout": options.get("socket_connect_timeout", timeout),
            "retry": retry.Retry(module("redis.backoff").NoBackoff(), 0),
            "password": self.sentinel_password,
        }

    def _arguments(
        self, options: dict[str, Any], connections: tuple[type[Any], type[Any]], *, is_async: bool
    ) -> dict[str, Any]:
        """Keyword arguments of a ``SentinelConnectionPool``: service, a new Sentinel, connection options."""
        manager = _manager_class(is_async=is_async)(
            self.sentinels, sentinel_kwargs=self._sentinel_options(options, is_async=is_async)
        )
        plain, tls = connections
        connection = tls if self.tls else plain
        return {
            "service_name": self.service,
            "sentinel_manager": manager,
            "connection_class": connection,
            **options,
            **self.data_options,  # as from_url does: the URL's own options win
        }

    def sync_pool(self, **options: Any) -> redis.ConnectionPool:
        """The layer's waiting sync pool (:func:`~buttress._redis._pool.sync_pool`) on the primary."""
        pool: redis.ConnectionPool = _waiting_class()(
            **self._arguments(options, _sync_connections(), is_async=False)
        )
        return pool

    def async_pool(self, **options: Any) -> redis.asyncio.ConnectionPool:
        """The layer's blocking asyncio pool (:func:`~buttress._redis._pool.async_pool`) on the primary."""
        pool: redis.asyncio.ConnectionPool = _wait_free_class()(
            **self._arguments(options, _async_connections(), is_async=True)
        )
        return pool

    def plain_pool(self, **options: Any) -> redis.ConnectionPool:
        """A sync pool without a wait, for dedicated connections (pub/sub) and one-shot probes.

        Its connections check the primary every :data:`RECHECK` seconds they send or poll, and fail with a
        ConnectionError once it has moved (their owner reconnects and reports the gap).
        """
        pool: redis.ConnectionPool = _plain_class()(
            **self._arguments(options, _dedicated_connections(), is_async=False)
        )
        return pool


def service_path(url: str, field: str = "url") -> list[str]:
    """``[service]`` or ``[service, db]`` from a Sentinel URL's path; a ValidationError naming ``field``."""
    path = [part for part in urlsplit(url).path.split("/") if part]
    service = path[0] if path else ""
    if not _SERVICE.match(service) or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValidationError(
            f"{field} {mask_url(url)!r} must name the Sentinel service (letters, digits, '.', '_', '-') and "
            "optionally a database number after the sentinels: "
            "redis+sentinel://[:password@]host:port[,host:port...]/<service>[/<db>], "
            f"e.g. {SENTINEL_EXAMPLE}",
            field=field,
        )
    return path


def sentinel_target(url: str, field: str = "url") -> SentinelTarget:
    """Parse a ``redis+sentinel://`` URL (checked by ``check_url``); a ValidationError naming ``field``."""
    parts = urlsplit(url)
    path = service_path(url, field)
    service = path[0]
    query = parse_qsl(parts.query, keep_blank_values=True)
    sentinel_password = next((value for key, value in query if key == "sentinel_password"), None)
    rest = urlencode([(key, value) for key, value in query if key != "sentinel_password"])
    tls = parts.scheme.lower().startswith("rediss")
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    database = path[1] if len(path) == 2 else "0"
    standalone = f"{'rediss' if tls else 'redis'}://{userinfo}localhost/{database}?{rest}"
    try:
        options = module("redis.connection").parse_url(standalone)
    except ValueError as exc:
        raise invalid_url(url, exc, field) from None
    for key in ("host", "port", "connection_class"):
        options.pop(key, None)
    sentinels = []
    for address in hosts(url):
        split = urlsplit(f"//{address}")
        sentinels.append((split.hostname or "127.0.0.1", split.port or SENTINEL_PORT))
    return SentinelTarget(url, sentinels, service, options, sentinel_password or None, tls=tls)


def _short(exc: BaseException, sentinels: list[Any]) -> Any:
    """``exc`` (MasterNotFoundError) with each sentinel client's repr, some 2 kB, replaced by its address."""
    message = str(exc)
    for client in sentinels:
        kwargs = client.connection_pool.connection_kwargs
        message = message.replace(str(client), f"{kwargs.get('host')}:{kwargs.get('port')}")
    return type(exc)(message)


@functools.cache
def _manager_class(*, is_async: bool) -> type[Any]:
    """redis-py's Sentinel client whose "no primary found" error names each sentinel by its address.

    redis-py's quotes each sentinel client's repr: a 2 kB line per sentinel in every outage log and
    health check.
    """
    sentinel = module("redis.asyncio.sentinel" if is_async else "redis.sentinel")

    if is_async:

        class AsyncManager(sentinel.Sentinel):  # type: ignore[misc, name-defined]
            async def discover_master(self, service_name: str) -> Any:
                try:
                    return await super().discover_master(service_name)
                except sentinel.MasterNotFoundError as exc:
                    raise _short(exc, self.sentinels) from None

        return AsyncManager

    class Manager(sentinel.Sentinel):  # type: ignore[misc, name-defined]
        def discover_master(self, service_name: str) -> Any:
            try:
                return super().discover_master(service_name)
            except sentinel.MasterNotFoundError as exc:
                raise _short(exc, self.sentinels) from None

    return Manager


@functools.cache
def _sync_connections() -> tuple[type[Any], type[Any]]:
    """redis-py's Sentinel connections (plain, TLS), asking the sentinels on every connect, made on first use.

    redis-py's own ask them only in ``connect()``; a command sent on an unconnected one (a pub/sub
    connection's first PSUBSCRIBE, a retry after a broken socket) connects to the last address it had, or
    to localhost:6379 at first.
    """
    sentinel = module("redis.sentinel")
    ssl = module("redis.connection").SSLConnection

    class PrimaryConnection(sentinel.SentinelManagedConnection):  # type: ignore[misc, name-defined]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self._sock:
                self.connect()
            super().send_packed_command(command, check_health)

    class PrimarySSLConnection(PrimaryConnection, ssl):  # type: ignore[misc, valid-type]
        pass

    return PrimaryConnection, PrimarySSLConnection


@functools.cache
def _dedicated_connections() -> tuple[type[Any], type[Any]]:
    """:func:`_sync_connections` that notice a switchover while they stay connected, made on first use.

    A planned failover leaves the old primary up, accepting writes, until Sentinel demotes it (about 10 s);
    a pub/sub connection on it would publish to nobody else. So at most every :data:`RECHECK` seconds, a
    send first asks the sentinels where the primary is, and a connection that is no longer there is closed
    with a ConnectionError.
    """
    primary, _ = _sync_connections()
    ssl = module("redis.connection").SSLConnection
    errors = (module("redis.exceptions").RedisError, OSError)
    moved = module("redis.exceptions").ConnectionError

    class DedicatedConnection(primary):  # type: ignore[misc, valid-type]
        recheck_at = 0.0

        def connect_to(self, address: Any) -> None:
            super().connect_to(address)
            self.recheck_at = time.monotonic() + RECHECK

        def _recheck(self) -> None:
            now = time.monotonic()
            if self._sock and now >= self.recheck_at:
                self.recheck_at = now + RECHECK
                try:
                    address = self.connection_pool.get_master_address()
                except errors:
                    self.recheck_at = now + _RECHECK_AFTER_FAILURE
                else:
                    if tuple(address) != (self.host, self.port):
                        self.disconnect()
                        raise moved(f"the primary moved to {address[0]}:{address[1]}")

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            self._recheck()  # a sender
            super().send_packed_command(command, check_health)

        def can_read(self, timeout: float = 0) -> bool:
            self._recheck()  # a listener, polling
            return bool(super().can_read(timeout))

    class DedicatedSSLConnection(DedicatedConnection, ssl):  # type: ignore[misc, valid-type]
        pass

    return DedicatedConnection, DedicatedSSLConnection


@functools.cache
def _async_connections() -> tuple[type[Any], type[Any]]:
    """:func:`_sync_connections` for ``redis.asyncio``."""
    sentinel = module("redis.asyncio.sentinel")
    ssl = module("redis.asyncio.connection").SSLConnection

    class PrimaryConnection(sentinel.SentinelManagedConnection):  # type: ignore[misc, name-defined]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.is_connected:
                await self.connect()
            await super().send_packed_command(command, check_health)

    class PrimarySSLConnection(PrimaryConnection, ssl):  # type: ignore[misc, valid-type]
        pass

    return PrimaryConnection, PrimarySSLConnection


@functools.cache
def _waiting_class() -> type[redis.ConnectionPool]:
    """The layer's waiting sync pool mixed into redis-py's Sentinel pool, made on first use."""
    sentinel = module("redis.sentinel")
    errors = (module("redis.exceptions").RedisError, OSError)

    class WaitingSentinelPool(_sync_pool_class(), sentinel.SentinelConnectionPool):  # type: ignore[misc, name-defined]
        """Waits for a free connection like the standalone pool; ``disconnect()`` closes the sentinels too.

        Every :data:`RECHECK` seconds a checkout first asks the sentinels for the primary: if it moved while
        the old one stays up (a planned failover), the idle connections are dropped, and the busy ones when
        they come back, instead of writing to the old primary until Sentinel demotes it.
        """

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.recheck_at = time.monotonic() + RECHECK

        def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            now = time.monotonic()
            if now >= self.recheck_at:
                self.recheck_at = now + RECHECK
                try:
                    self.get_master_address()  # a new address disconnects the idle connections
                except errors:
                    self.recheck_at = now + _RECHECK_AFTER_FAILURE
            return super().get_connection(*args, **kwargs)

        def disconnect(self, inuse_connections: bool = True) -> None:
            super().disconnect(inuse_connections)
            if inuse_connections:
                self.sentinel_manager.close()

    return WaitingSentinelPool


@functools.cache
def _plain_class() -> type[redis.ConnectionPool]:
    """redis-py's Sentinel pool whose ``disconnect()`` closes the sentinels too, made on first use."""
    sentinel = module("redis.sentinel")

    class SentinelPool(sentinel.SentinelConnectionPool):  # type: ignore[misc, name-defined]
        def disconnect(self, inuse_connections: bool = True) -> None:
            super().disconnect(inuse_connections)
            if inuse_connections:
                self.sentinel_manager.close()

    return SentinelPool


@functools.cache
def _wait_free_class() -> type[redis.asyncio.ConnectionPool]:
    """The layer's asyncio pool mixed into redis-py's asyncio Sentinel pool, made on first use."""
    sentinel = module("redis.asyncio.sentinel")
    errors = (module("redis.exceptions").RedisError, OSError)

    class WaitFreeSentinelPool(_pool_class(), sentinel.SentinelConnectionPool):  # type: ignore[misc, name-defined]
        """Waits on a Condition only when every connection is busy; ``disconnect()`` closes the sentinels.

        Rechecks the primary every :data:`RECHECK` seconds, as the sync pool does.
        """

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.recheck_at = time.monotonic() + RECHECK

        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            now = time.monotonic()
            if now >= self.recheck_at:
                self.recheck_at = now + RECHECK
                try:
                    await self.get_master_address()  # a new address disconnects the idle connections
                except errors:
                    self.recheck_at = now + _RECHECK_AFTER_FAILURE
            connection = await super().get_connection(*args, **kwargs)
            address = self.master_address
            if (
                address is not None
                and connection.is_connected
                and (connection.host, connection.port) != address
            ):
                await connection.disconnect()  # busy at the move (an asyncio release keeps any connection)
            return connection

        async def disconnect(self, inuse_connections: bool = True) -> None:
            await super().disconnect(inuse_connections)
            if inuse_connections:
                await self.sentinel_manager.aclose()

    return WaitFreeSentinelPool
