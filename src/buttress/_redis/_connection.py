"""One Redis connection for one owner: a sync pool, an asyncio client per event loop, and the outage rule.

:meth:`RedisConnection.run` runs a :class:`~buttress._redis.Script`; :meth:`RedisConnection.call` runs
any command function (``command(client, *args)``), and :meth:`RedisConnection.drive` runs a *plan*, a
generator that yields such commands and is sent their replies, so one body serves the sync and the async
API. While Redis is unreachable each of them returns :data:`UNAVAILABLE` at once: the first connection
error (or timeout) marks it down, and from then on one call per backoff interval probes it
(:class:`~buttress._outage.OutageTracker`). The owner decides what to serve meanwhile; it hears about the
transitions through ``on_down(error)`` and ``on_up(outage_seconds)`` and keeps its own metrics, events and
log lines. The connection policy (timeout, pool, reconnect) is described in :mod:`buttress._redis._client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from buttress._outage import OutageTracker
from buttress._redis._client import DEFAULT_TIMEOUT, POOL_SIZE, module, pool_options
from buttress._redis._pool import async_pool, sync_pool
from buttress._redis._script import Script
from buttress._redis._sentinel import sentinel_target
from buttress._redis._url import check_prefix, check_url, invalid_url, mask_text, mask_url, topology
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.health_types import CheckResult

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from buttress._tally import Tally

__all__ = ["UNAVAILABLE", "Plan", "RedisConnection", "execute", "pipeline"]

_T = TypeVar("_T")
Plan = Generator[tuple[Any, ...], Any, _T]
"""An operation as the Redis commands it needs: it yields ``(command, *args)`` and is sent each reply
(:data:`UNAVAILABLE` while Redis is unreachable; a Redis error reply is thrown into it)."""


class _Unavailable:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __bool__(self) -> bool:
        return False


UNAVAILABLE: Final = _Unavailable()
"""What a call returns when Redis cannot be reached: the owner serves it by its outage policy."""


def execute(client: Any, *args: Any) -> Any:
    """One command (a sync client returns the reply, an async one an awaitable of it)."""
    return client.execute_command(*args)


def pipeline(client: Any, commands: Sequence[tuple[Any, ...]]) -> Any:
    """Several commands in one round trip (not a transaction: each applies on its own)."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute()


def _check_timeout(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(
            f"{field} must be a number of seconds > 0, got {value!r}; e.g. {DEFAULT_TIMEOUT}", field=field
        )
    return float(value)


class RedisConnection:
    """The connection of one owner (a cache backend, a resilience store) to the Redis at ``url``.

    ``prefix`` starts every key the owner writes (:meth:`key`). ``timeout`` bounds connecting and each
    reply; ``max_connections`` sizes the sync pool and each event loop's pool. ``scripts`` are loaded
    again when a :meth:`call` (an ``EVALSHA`` in a plan) meets ``NOSCRIPT``. ``on_down(error)`` runs when
    an outage starts (``error`` is ``"<Type>: <message>"``, password masked), ``on_up(seconds)`` when it
    ends. ``url_field`` and ``timeout_field`` name the owner's parameters in errors.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "buttress",
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = POOL_SIZE,
        clock: Clock = SYSTEM_CLOCK,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        scripts: Iterable[Script] = (),
        on_down: Callable[[str], object] | None = None,
        on_up: Callable[[float], object] | None = None,
        url_field: str = "url",
        timeout_field: str = "socket_timeout",
    ) -> None:
        check_url(url, url_field)
        self.prefix = check_prefix(prefix)
        self.timeout = _check_timeout(timeout, timeout_field)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValidationError(
                f"max_connections must be an integer >= 1, got {max_connections!r}; e.g. {POOL_SIZE}",
                field="max_connections",
            )
        self.url = url
        self.label = mask_url(url)
        """The URL as it may be shown: password masked."""
        self.max_connections = max_connections
        self.clock = clock
        self.outage = OutageTracker(clock=clock, reconnect_min=reconnect_min, reconnect_max=reconnect_max)
        self.scripts = tuple(scripts)
        self._on_down = on_down
        self._on_up = on_up
        self.server_time = isinstance(clock, SystemClock)
        """True when scripts read Redis ``TIME`` (:meth:`now_arg` is always empty)."""
        redis_module = module()
        exceptions = redis_module.exceptions
        self.errors: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            OSError,
        )
        """What counts as "Redis is unreachable": refused, reset, timed out, no pooled connection."""
        self.response_error: type[Exception] = exceptions.ResponseError
        self._noscript: type[Exception] = exceptions.NoScriptError
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._client: redis.Redis
        self._new_async_client: Callable[[], redis.asyncio.Redis] = self._async_standalone
        self._whole_cluster = False
        """On a cluster, a probe first PINGs every primary: a call to a live slot must not end an outage
        that the dead ones still have (the owner would flap between its fallback and Redis)."""
        kind = topology(url)  # chosen once here: the calls below never ask again
        if kind == "cluster":
            self._cluster_clients()
            return
        sentinel = sentinel_target(url, url_field) if kind == "sentinel" else None
        try:
            options = pool_options(self.timeout, max_connections)
            pool = sync_pool(url, **options) if sentinel is None else sentinel.sync_pool(**options)
        except ValueError as exc:  # a malformed port, database or query option
            raise invalid_url(url, exc, url_field) from None
        self._client = redis_module.Redis.from_pool(pool)
        if sentinel is not None:  # a Sentinel pool's connections ask the sentinels for the primary
            self._new_async_client = lambda: module("redis.asyncio").Redis.from_pool(
                sentinel.async_pool(**pool_options(self.timeout, self.max_connections, is_async=True))
            )

    def _cluster_clients(self) -> None:
        """Redis Cluster (:mod:`buttress._redis._cluster`): its clients, and its failures as outages."""
        from buttress._redis._cluster import AsyncClusterClient, ClusterClient, cluster_errors  # noqa: PLC0415 - cluster code loads only for a cluster URL

        # Typed as the standalone clients: the wrappers answer every call owners make of those.
        self._client = cast("redis.Redis", ClusterClient(self.url, self.timeout, self.max_connections))
        self._new_async_client = lambda: cast(
            "redis.asyncio.Redis", AsyncClusterClient(self.url, self.timeout, self.max_connections)
        )
        self.errors = (*self.errors, *cluster_errors())
        self._whole_cluster = True

    def _async_standalone(self) -> redis.asyncio.Redis:
        """A standalone server's asyncio client, over the layer's pool (:mod:`buttress._redis._pool`)."""
        redis_asyncio = module("redis.asyncio")
        pool = async_pool(self.url, **pool_options(self.timeout, self.max_connections, is_async=True))
        client: redis.asyncio.Redis = redis_asyncio.Redis.from_pool(pool)
        return client

    def __repr__(self) -> str:
        state = "available" if self.available else "degraded"
        return f"RedisConnection({self.label!r}, prefix={self.prefix!r}, {state})"

    # -- keys and time ------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """``<prefix>:<part>:<part>...``: the Redis key of an owner's state."""
        return ":".join((self.prefix, *parts))

    def now_arg(self) -> str:
        """A script's ``now`` argument: empty (use Redis ``TIME``), or the injected clock in microseconds."""
        return "" if self.server_time else str(round(self.clock.time() * 1_000_000))

    # -- clients ------------------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        """The pooled sync client (on a cluster, a :class:`~buttress._redis._cluster.ClusterClient`:
        ``execute_command``, ``pipeline``, ``script_load`` and ``close``, routed by slot)."""
        return self._client

    def async_client(self) -> redis.asyncio.Redis:
        """The ``redis.asyncio`` client of the running event loop (one per loop, created on first use)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            made = self._new_async_client()
            with self._lock:
                client = self._async_clients.setdefault(loop, made)
        return client

    def close(self) -> None:
        """Close the sync pool's connections (it reconnects if used again; async clients: :meth:`aclose`)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client, then the sync pool."""
        await self.aclose_loop()
        self.close()

    async def aclose_loop(self) -> None:
        """Close the running loop's async client only (that loop is stopping; other users go on)."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # -- running commands ---------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable (between a failure and a successful probe)."""
        return self.outage.down_since is None

    @property
    def calls(self) -> Tally:
        """Calls answered with :data:`UNAVAILABLE` (skipped during an outage, or failed)."""
        return self.outage.calls

    def call(self, command: Callable[..., Any], *args: Any) -> Any:
        """``command(client, *args)`` on the sync client; :data:`UNAVAILABLE` if Redis is unreachable.

        A Redis error reply (``ResponseError``) is raised to the caller. Only a probe (a call made while
        Redis is marked down) can mark it up again, and only an outcome from the tracker's current epoch
        changes its state (see :mod:`buttress._outage`).
        """
        outage = self.outage
        epoch, probe = outage.epoch, outage.down_since is not None
        if probe and (outage.skip() or (self._whole_cluster and not self._primaries_answer(epoch))):
            return UNAVAILABLE
        client = self._client
        try:
            try:
                reply = command(client, *args)
            except self._noscript:  # Redis restarted (or SCRIPT FLUSH) since the scripts were loaded
                for script in self.scripts:
                    client.script_load(script.source)
                reply = command(client, *args)
        except self.errors as exc:
            with contextlib.suppress(Exception):  # a dead server's idle sockets would fail the next probes
                client.connection_pool.disconnect(inuse_connections=False)
            self._went_down(exc, epoch)
            return UNAVAILABLE
        if probe:
            self._came_back(epoch)
        return reply

    async def acall(self, command: Callable[..., Any], *args: Any) -> Any:
        """:meth:`call` on the running loop's async client (``command`` returns an awaitable)."""
        outage = self.outage
        epoch, probe = outage.epoch, outage.down_since is not None
        if probe and (outage.skip() or (self._whole_cluster and not await self._aprimaries_answer(epoch))):
            return UNAVAILABLE
        client = self.async_client()
        try:
            try:
                reply = await command(client, *args)
            except self._noscript:
                for script in self.scripts:
                    await client.script_load(script.source)
                reply = await command(client, *args)
        except self.errors as exc:
            with contextlib.suppress(Exception):
                await client.connection_pool.disconnect(inuse_connections=False)
            self._went_down(exc, epoch)
            return UNAVAILABLE
        if probe:
            self._came_back(epoch)
        return reply

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes | int | float]) -> Any:
        """Run ``script`` with one ``EVALSHA`` (``SCRIPT LOAD`` and again on ``NOSCRIPT``)."""
        return self.call(self._evalsha, script, keys, args)

    async def arun(
        self, script: Script, keys: Sequence[str], args: Sequence[str | bytes | int | float]
    ) -> Any:
        """:meth:`run` on the running loop's async client."""
        return await self.acall(self._aevalsha, script, keys, args)

    # EVALSHA through execute_command: redis-py's evalsha() adds two frames and nothing else we use

    def _evalsha(self, client: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except self._noscript:
            client.script_load(script.source)
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _aevalsha(self, client: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except self._noscript:
            await client.script_load(script.source)
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def drive(self, plan: Plan[_T]) -> _T:
        """Run ``plan`` on the sync client; a Redis error reply is thrown into the plan, to handle there."""
        try:
            step = next(plan)
            while True:
                try:
                    reply = self.call(*step)
                except self.response_error as exc:
                    step = plan.throw(exc)
                else:
                    step = plan.send(reply)
        except StopIteration as done:
            result: _T = done.value
            return result

    async def adrive(self, plan: Plan[_T]) -> _T:
        """:meth:`drive` on the running loop's async client."""
        try:
            step = next(plan)
            while True:
                try:
                    reply = await self.acall(*step)
                except self.response_error as exc:
                    step = plan.throw(exc)
                else:
                    step = plan.send(reply)
        except StopIteration as done:
            result: _T = done.value
            return result

    # -- outages ------------------------------------------------------------------------------------

    def _primaries_answer(self, epoch: int) -> bool:
        """Whether every primary of the cluster answers a PING (a probe's first step on a cluster)."""
        try:
            execute(self._client, "PING")  # the cluster client sends a bare PING to every primary
        except self.errors as exc:
            self._went_down(exc, epoch)
            return False
        return True

    async def _aprimaries_answer(self, epoch: int) -> bool:
        """:meth:`_primaries_answer` on the running loop's async client."""
        try:
            await execute(self.async_client(), "PING")
        except self.errors as exc:
            self._went_down(exc, epoch)
            return False
        return True

    @property
    def last_error(self) -> str:
        """``"<Type>: <message>"`` of the last failure, password masked."""
        return self.outage.last_error

    def outage_seconds(self) -> float:
        """How long the current outage has lasted (0 while Redis answers)."""
        return self.outage.outage_seconds()

    def _went_down(self, exc: BaseException, epoch: int) -> None:
        outage = self.outage
        started = outage.mark_down(exc, epoch)
        outage.last_error = mask_text(outage.last_error, self.url)
        if started and self._on_down is not None:
            self._on_down(outage.last_error)

    def _came_back(self, epoch: int) -> None:
        seconds = self.outage.mark_up(epoch)
        if seconds is not None and self._on_up is not None:
            self._on_up(seconds)

    def check(self, *, name: str = "redis", consequence: str = "", passing: str | None = None) -> CheckResult:
        """Pass while Redis answers; warn (never fail) during an outage, with its length in seconds.

        The warning reads ``"<name> <url> unreachable for <n> s (<error>); <consequence>"``; the pass
        output is ``passing`` (default ``"<name> at <url>"``).
        """
        if self.available:
            return CheckResult("pass", passing if passing is not None else f"{name} at {self.label}")
        outage = self.outage_seconds()
        text = f"{name} {self.label} unreachable for {outage:.0f} s ({self.last_error})"
        return CheckResult(
            "warn",
            f"{text}; {consequence}" if consequence else text,
            observed_value=round(outage, 3),
            observed_unit="s",
        )
