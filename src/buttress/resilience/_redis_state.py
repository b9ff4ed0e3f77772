"""Shared state in Redis: one Lua script per state change, and a declared policy for when Redis is gone.

Every breaker, limiter and retry-budget operation on Redis is one ``EVALSHA`` (one round trip, atomic),
under a prefixed key that carries a TTL; the connection, the scripts (``.lua`` files) and the outage
bookkeeping are the Redis layer's (:mod:`buttress._redis`); this module adds the policy and the
reporting. Scripts read the time from Redis ``TIME`` so every process agrees on it; with an
injected non-system clock (tests) the caller passes its own ``now`` instead.

When Redis cannot be reached, :meth:`RedisState.run` returns :data:`UNAVAILABLE` at once and the store
follows its policy:

- ``local`` (default): use this process's in-memory state until Redis is back;
- ``open``: fail open, admit every call;
- ``closed``: fail closed, reject every call.

While Redis is down, one call probes it again after a backoff (0.5 s doubling to 30 s); calls in between
never touch the network.

Breakers keep a copy of their shared state in each process (see ``_breaker_redis.py``): every transition
is pushed to every process through one subscriber thread per RedisState (``_breaker_feed.py``), and each
process re-reads the state at least every ``sync_interval`` seconds while it makes calls, so a lost
message cannot keep it wrong for longer.

The outage state shows in the gauge ``buttress_resilience_store_degraded``, the counter
``buttress_resilience_store_policy_calls_total`` and a health warning (:meth:`RedisState.check`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from buttress._redis import DEFAULT_TIMEOUT, LUA_NOW, UNAVAILABLE, RedisConnection, Script
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.events import publish_quietly
from buttress.resilience._breaker_feed import BreakerFeed

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from buttress.events import EventBus
    from buttress.health_types import CheckResult
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["LUA_NOW", "UNAVAILABLE", "RedisState", "Script", "StorePolicy", "check_policy"]

_log = logging.getLogger(__name__)

StorePolicy = Literal["local", "open", "closed"]
_POLICIES: Final = get_args(StorePolicy)

DEGRADED_METRIC = "buttress_resilience_store_degraded"
POLICY_CALLS_METRIC = "buttress_resilience_store_policy_calls_total"

_CONSEQUENCE: Final = {
    "local": "each process keeps its own breaker and limiter state",
    "open": "every call is admitted",
    "closed": "every call is rejected",
}


def check_policy(value: object, field: str = "policy") -> StorePolicy:
    """``value`` as a StorePolicy, or a ValidationError naming ``field`` and the choices."""
    if value not in _POLICIES:
        raise ValidationError(
            f"{field} must be one of {', '.join(_POLICIES)} (what to do while Redis is unreachable), "
            f"got {value!r}",
            field=field,
        )
    return value  # type: ignore[return-value]


def _check_interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise ValidationError(
            "sync_interval must be a number of seconds in (0, 60] (how often a process re-reads each "
            f"shared breaker it uses and writes its batched successes), got {value!r}; e.g. 0.25",
            field="sync_interval",
        )
    return float(value)


class RedisState:
    """A connection to the Redis that holds shared resilience state, with its outage policy.

    ``url`` is a ``redis://`` URL; ``prefix`` starts every key (``<prefix>:{<kind>:<name>}``) so several
    services can share one Redis. ``socket_timeout`` bounds how long a call can stall on a Redis that
    hangs (the Redis layer's one default, :data:`buttress._redis.DEFAULT_TIMEOUT`). ``sync_interval``
    is the longest a process serves a shared breaker from its own copy without re-reading Redis (and
    holds its batched successes); transitions reach it sooner, pushed. The same object serves sync
    callers (a pooled client) and async callers (one ``redis.asyncio`` client per event loop).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "buttress",
        policy: StorePolicy = "local",
        clock: Clock = SYSTEM_CLOCK,
        socket_timeout: float = DEFAULT_TIMEOUT,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        sync_interval: float = 0.25,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.policy: StorePolicy = check_policy(policy)
        self.sync_interval = _check_interval(sync_interval)
        self.connection = RedisConnection(
            url,
            prefix=prefix,
            timeout=socket_timeout,
            clock=clock,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            on_down=self._went_down,
            on_up=self._came_back,
        )
        connection = self.connection
        self.url = url
        self.prefix = prefix
        self.clock = clock
        self.socket_timeout = connection.timeout
        self.policy_calls = connection.calls
        self._label = connection.label
        self._events = events
        if metrics is None:
            from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

            metrics = get_metrics()
        self._metrics: MetricsRegistry = metrics
        metrics.add_collect_hook(self._export)
        self._exported_policy_calls = 0
        self._feed: BreakerFeed | None = None
        self._feed_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "available" if self.available else "degraded"
        return f"RedisState({self._label!r}, prefix={self.prefix!r}, policy={self.policy!r}, {state})"

    def key(self, kind: str, name: str) -> str:
        """The key of ``name``'s state of ``kind`` (``breaker``, ``budget``): ``<prefix>:{<kind>:<name>}``.

        The braces are a Redis Cluster hash tag: every key of one primitive (this key and the ones made
        by appending ``:<suffix>``) lands in one slot, so one script may touch them all.
        """
        return f"{self.prefix}:{{{kind}:{name}}}"

    def now_arg(self) -> str:
        """A script's ``now`` argument: empty (use Redis ``TIME``), or the injected clock in microseconds."""
        return self.connection.now_arg()

    def client(self) -> redis.Redis:
        """The pooled sync client."""
        return self.connection.client()

    def async_client(self) -> redis.asyncio.Redis:
        """The ``redis.asyncio`` client of the running event loop (one per loop, created on first use)."""
        return self.connection.async_client()

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """Run ``script`` with one ``EVALSHA``; :data:`UNAVAILABLE` if Redis cannot be reached."""
        return self.connection.run(script, keys, args)

    async def arun(self, script: Script, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """:meth:`run` for async callers, on the running loop's async client."""
        return await self.connection.arun(script, keys, args)

    def breaker_feed(self) -> BreakerFeed:
        """The subscription that pushes breaker transitions to this process (made on first use)."""
        feed = self._feed
        if feed is None:
            with self._feed_lock:
                feed = self._feed
                if feed is None:
                    feed = self._feed = BreakerFeed(self.connection)
        return feed

    def close(self) -> None:
        """Close the sync connection pool and the breaker feed (async clients close with :meth:`aclose`)."""
        self._close_feed()
        self.connection.close()
        self._metrics.remove_collect_hook(self._export)

    async def aclose(self) -> None:
        """Close the running loop's async client, the sync pool and the breaker feed."""
        self._close_feed()
        await self.connection.aclose()
        self._metrics.remove_collect_hook(self._export)

    def _close_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable (between a failure and a successful probe)."""
        return self.connection.available

    # -- reporting --------------------------------------------------------------------------------

    def _went_down(self, error: str) -> None:
        _log.warning(
            "resilience store %s unreachable (%s); following policy %r until it returns",
            self._label,
            error,
            self.policy,
        )
        self._emit("degraded", error=error)

    def _came_back(self, outage: float) -> None:
        _log.warning("resilience store %s is back after %.1f s", self._label, outage)
        self._emit("recovered", outage_seconds=round(outage, 3))

    def _emit(self, what: str, **payload: Any) -> None:
        publish_quietly(
            self._events,
            f"resilience.store.{what}",
            {"store": self._label, "policy": self.policy, **payload},
        )

    def _export(self, registry: MetricsRegistry) -> None:
        store = self._label
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
        return self.connection.check(
            name="resilience store",
            passing=f"resilience state in {self._label}",
            consequence=f"policy {self.policy!r}: {_CONSEQUENCE[self.policy]} until it returns",
        )
