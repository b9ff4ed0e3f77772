"""Shared state in Redis: one Lua script per state change, and a declared policy for when Redis is gone.

Every breaker, limiter and retry-budget operation on Redis is one ``EVALSHA`` (one round trip, atomic),
under a namespaced key that carries a TTL. Scripts read the time from Redis ``TIME`` so every process
agrees on it; with an injected non-system clock (tests) the caller passes its own ``now`` instead.

When Redis cannot be reached, :meth:`RedisState.run` returns :data:`UNAVAILABLE` at once and the store
follows its policy:

- ``local`` (default): use this process's in-memory state until Redis is back;
- ``open``: fail open, admit every call;
- ``closed``: fail closed, reject every call.

While Redis is down, one call probes it again after a backoff (0.5 s doubling to 30 s); calls in between
never touch the network. The state shows in the gauge ``buttress_resilience_store_degraded``, the counter
``buttress_resilience_store_policy_calls_total`` and a health warning (:meth:`RedisState.check`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from buttress._outage import OutageTracker
from buttress._redaction import mask_url_password
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.events import publish_quietly

if TYPE_CHECKING:
    import asyncio

    import redis
    import redis.asyncio

    from buttress.events import EventBus
    from buttress.observe.health import CheckResult
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["LUA_NOW", "UNAVAILABLE", "RedisState", "Script", "StorePolicy", "check_policy"]

_log = logging.getLogger(__name__)

StorePolicy = Literal["local", "open", "closed"]
_POLICIES: Final = get_args(StorePolicy)

DEGRADED_METRIC = "buttress_resilience_store_degraded"
POLICY_CALLS_METRIC = "buttress_resilience_store_policy_calls_total"

LUA_NOW: Final = """
local function fmt(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""
"""Lua prelude: ``now`` in integer microseconds, from ``ARGV[1]`` if the caller passed one, else ``TIME``.

Every script takes ``now`` as its first argument (:meth:`RedisState.now_arg`). Keep times in integer
microseconds (exact in a Lua double) and write numbers with ``fmt(x)``: ``tostring`` keeps only 14
significant digits (0.1 ms of an epoch time) and Redis truncates a Lua number reply to an integer.
"""


class _Unavailable:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __bool__(self) -> bool:
        return False


UNAVAILABLE: Final = _Unavailable()
"""What :meth:`RedisState.run` returns when Redis cannot be reached: follow the policy."""


def check_policy(value: object, field: str = "policy") -> StorePolicy:
    """``value`` as a StorePolicy, or a ValidationError naming ``field`` and the choices."""
    if value not in _POLICIES:
        raise ValidationError(
            f"{field} must be one of {', '.join(_POLICIES)} (what to do while Redis is unreachable), "
            f"got {value!r}",
            field=field,
        )
    return value  # type: ignore[return-value]


class Script:
    """A Lua script known by its SHA1, loaded into Redis on first ``NOSCRIPT``."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"Script(sha={self.sha[:12]})"


class RedisState:
    """A connection to the Redis that holds shared resilience state, with its outage policy.

    ``url`` is a ``redis://`` URL; ``namespace`` prefixes every key (``<namespace>:<kind>:<name>``) so
    several services can share one Redis. ``socket_timeout`` bounds how long a call can stall on a Redis
    that hangs. The same object serves sync callers (a pooled client) and async callers (one
    ``redis.asyncio`` client per event loop).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "buttress",
        policy: StorePolicy = "local",
        clock: Clock = SYSTEM_CLOCK,
        socket_timeout: float = 0.5,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValidationError(
                f"url must be a redis:// (or rediss://, unix://) URL, got {mask_url_password(str(url))!r}; "
                "e.g. redis://127.0.0.1:6379/0",
                field="url",
            )
        if not isinstance(namespace, str) or not namespace or any(c in namespace for c in " {}"):
            raise ValidationError(
                f"namespace must be a non-empty string without spaces or braces, got {namespace!r}; "
                "e.g. 'myservice'",
                field="namespace",
            )
        self.url = url
        self.namespace = namespace
        self.policy: StorePolicy = check_policy(policy)
        self.clock = clock
        self.socket_timeout = socket_timeout
        self._outage = OutageTracker(clock=clock, reconnect_min=reconnect_min, reconnect_max=reconnect_max)
        self._server_time = isinstance(clock, SystemClock)
        self._client: redis.Redis | None = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self.policy_calls = self._outage.calls
        self._events = events
        if metrics is None:
            from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

            metrics = get_metrics()
        self._metrics: MetricsRegistry = metrics
        metrics.add_collect_hook(self._export)
        self._exported_policy_calls = 0

    def __repr__(self) -> str:
        state = "available" if self.available else "degraded"
        return (
            f"RedisState({mask_url_password(self.url)!r}, namespace={self.namespace!r}, "
            f"policy={self.policy!r}, {state})"
        )

    # -- keys and time --------------------------------------------------------------------------

    def key(self, kind: str, name: str) -> str:
        """The Redis key of ``name``'s state of ``kind`` (``breaker``, ``limiter``, ``budget``)."""
        return f"{self.namespace}:{kind}:{name}"

    def now_arg(self) -> str:
        """A script's ``now`` argument: empty (use Redis ``TIME``), or the injected clock in microseconds."""
        return "" if self._server_time else str(round(self.clock.time() * 1_000_000))

    # -- clients ----------------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        """The pooled sync client (created on first use)."""
        client = self._client
        if client is None:
            import redis  # noqa: PLC0415 - keep imports light

            with self._lock:
                if self._client is None:
                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_timeout=self.socket_timeout,
                        socket_connect_timeout=self.socket_timeout,
                        retry_on_timeout=False,
                    )
                client = self._client
        return client

    def async_client(self) -> redis.asyncio.Redis:
        """The ``redis.asyncio`` client of the running event loop (one per loop, created on first use)."""
        import asyncio  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import redis.asyncio  # noqa: PLC0415 - keep imports light

            client = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry_on_timeout=False,
            )
            self._async_clients[loop] = client
        return client

    def close(self) -> None:
        """Close the sync connection pool (async clients close with :meth:`aclose`)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._metrics.remove_collect_hook(self._export)

    async def aclose(self) -> None:
        """Close the running loop's async client and the sync pool."""
        import asyncio  # noqa: PLC0415

        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    # -- running scripts --------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable (between a failure and a successful probe)."""
        return self._outage.down_since is None

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """Run ``script`` with one ``EVALSHA``; :data:`UNAVAILABLE` if Redis cannot be reached."""
        outage = self._outage
        epoch, probe = outage.epoch, outage.down_since is not None
        if probe and outage.skip():
            return UNAVAILABLE
        import redis  # noqa: PLC0415 - cached after the first call

        client = self.client()
        try:
            try:
                result = client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                client.script_load(script.source)
                result = client.evalsha(script.sha, len(keys), *keys, *args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self._mark_down(exc, epoch)
            return UNAVAILABLE
        if probe:
            self._mark_up(epoch)
        return result

    async def arun(self, script: Script, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """:meth:`run` for async callers, on the running loop's async client."""
        outage = self._outage
        epoch, probe = outage.epoch, outage.down_since is not None
        if probe and outage.skip():
            return UNAVAILABLE
        import redis  # noqa: PLC0415

        client = self.async_client()
        try:
            try:
                result = await client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                await client.script_load(script.source)
                result = await client.evalsha(script.sha, len(keys), *keys, *args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self._mark_down(exc, epoch)
            return UNAVAILABLE
        if probe:
            self._mark_up(epoch)
        return result

    # -- outage bookkeeping -----------------------------------------------------------------------

    def _mark_down(self, exc: BaseException, epoch: int) -> None:
        if self._outage.mark_down(exc, epoch):
            _log.warning(
                "resilience store %s unreachable (%s); following policy %r until it returns",
                mask_url_password(self.url),
                self._outage.last_error,
                self.policy,
            )
            self._emit("degraded", error=self._outage.last_error)

    def _mark_up(self, epoch: int) -> None:
        outage = self._outage.mark_up(epoch)
        if outage is not None:
            _log.warning("resilience store %s is back after %.1f s", mask_url_password(self.url), outage)
            self._emit("recovered", outage_seconds=round(outage, 3))

    def _emit(self, what: str, **payload: Any) -> None:
        publish_quietly(
            self._events,
            f"resilience.store.{what}",
            {"store": mask_url_password(self.url), "policy": self.policy, **payload},
        )

    def _export(self, registry: MetricsRegistry) -> None:
        store = mask_url_password(self.url)
        degraded = registry.gauge(
            DEGRADED_METRIC,
            "1 while a Redis resilience store is unreachable and its outage policy is in force.",
            labels=("store", "policy"),
        )
        degraded.labels(store=store, policy=self.policy).set(0 if self.available else 1)
        calls = registry.counter(
            POLICY_CALLS_METRIC,
            "Calls served by a Redis store's outage policy because Redis was unreachable.",
            labels=("store", "policy"),
        )
        value = self.policy_calls.value
        if value > self._exported_policy_calls:
            calls.labels(store=store, policy=self.policy).inc(value - self._exported_policy_calls)
            self._exported_policy_calls = value

    def check(self) -> CheckResult:
        """A health result: pass while Redis answers, warn (never fail) while the policy is in force."""
        from buttress.observe.health import CheckResult  # noqa: PLC0415

        if self._outage.down_since is None:
            return CheckResult("pass", f"resilience state in {mask_url_password(self.url)}")
        outage = self._outage.outage_seconds()
        what = {
            "local": "each process keeps its own breaker and limiter state",
            "open": "every call is admitted",
            "closed": "every call is rejected",
        }[self.policy]
        return CheckResult(
            "warn",
            f"resilience store {mask_url_password(self.url)} unreachable for {outage:.0f} s "
            f"({self._outage.last_error}); policy {self.policy!r}: {what} until it returns",
            observed_value=round(outage, 3),
            observed_unit="s",
        )
