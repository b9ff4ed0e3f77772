"""A keyed rate limiter (GCRA) in memory or in Redis, with waiting that reserves a slot instead of polling.

GCRA, the generic cell rate algorithm, is the token bucket written as one number per key: the theoretical
arrival time (TAT), when the bucket would be full again if nothing else came. With interval ``T =
period / limit`` a bucket of capacity ``burst`` refilling one token per ``T`` holds ``burst - (TAT -
now) / T`` tokens; taking ``c`` tokens adds ``c * T`` to ``max(TAT, now)``, and is allowed while the
result is at most ``burst * T`` ahead of now. So a fresh key admits ``burst`` calls at once, then one
per ``T``: exactly a token bucket of capacity ``burst`` refilled at the rate, without a refill loop and
with one float per key (one string in Redis).

A caller that may wait (:meth:`RateLimiter.acquire`) reserves its slot at once (the TAT moves on) and
then sleeps exactly until it; later callers queue behind it. Waiters are served in arrival order, each
sleeps once, and across processes on Redis the queue is the shared TAT.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, cast

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import RateLimited, ValidationError
from buttress.rate import Rate
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._limiter_memory import MemoryLimiterStore
from buttress.resilience._limiter_redis import RedisLimiterStore
from buttress.resilience._naming import UNNAMED, Unnamed, claim_derived, derived_name, unnamed_error
from buttress.resilience._redis_state import RedisState
from buttress.resilience._stores import LimiterStore
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["AVAILABLE_METRIC", "LimiterSnapshot", "RateLimiter", "live_limiters"]

P = ParamSpec("P")
R = TypeVar("R")

AVAILABLE_METRIC: Final = "buttress_resilience_limiter_available_tokens"
EXPORTED_KEYS: Final = 100
"""At most this many keys of one limiter get an available-tokens series (labels stay low-cardinality)."""

_live: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


def live_limiters() -> list[RateLimiter]:
    """Every rate limiter alive in this process, by name (for the ops server's ``/limiters``)."""
    return sorted(_live, key=lambda limiter: limiter.name)


@dataclass(frozen=True, slots=True)
class LimiterSnapshot:
    """One bucket of a limiter, now. ``rejected`` and ``waited`` count this key's calls in this process."""

    name: str
    key: str
    rate: str
    burst: int
    available: float
    rejected: int
    waited: int
    store: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``/limiters``)."""
        return asdict(self)


class RateLimiter:
    """Admit at most ``rate`` calls per key, with bursts of up to ``burst`` at once (GCRA, see the module).

    ``rate`` is a :class:`Rate` or text such as ``"60/minute"``. Each key (a host, a user id) has its own
    bucket with the same rate and burst. :meth:`try_acquire` never waits; :meth:`acquire` waits up to
    ``timeout`` (default ``max_wait``) for its slot and raises :class:`~buttress.errors.RateLimited`,
    taking nothing, when the wait would be longer. ``store`` is any
    :class:`~buttress.resilience.LimiterStore` built for this rate and burst, or a shorthand:
    ``"memory"`` (this process) or a :class:`RedisState` (one limit shared by every process; see its
    outage ``policy``); a limiter with a shared store needs a ``name`` or takes its decorated
    function's ``module.qualname``. ``max_keys`` bounds the keys kept in memory. As a decorator or
    through :meth:`call`, each call acquires a token of the ``"default"`` key first.

    Outcomes are counted as ``admitted`` (no wait), ``waited`` (admitted after a wait) and ``rejected``.
    """

    __slots__ = (
        "__weakref__",
        "_admitted",
        "_clock",
        "_exported",
        "_lock",
        "_mem",
        "_now",
        "_rejected",
        "_state",
        "_stats",
        "_store",
        "_take",
        "_telemetry",
        "_unnamed",
        "_waited",
        "burst",
        "max_keys",
        "max_wait",
        "name",
        "rate",
    )

    def __init__(
        self,
        rate: Rate | str,
        *,
        burst: int = 1,
        max_wait: float = 10.0,
        name: str | None = None,
        store: Literal["memory"] | RedisState | LimiterStore = "memory",
        max_keys: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.rate: Rate = rate if isinstance(rate, Rate) else Rate.parse(rate)
        self.burst = _check_int(burst, "burst", "e.g. burst=10 lets 10 calls through at once")
        self.max_wait = _check_seconds(max_wait, "max_wait", "e.g. max_wait=10.0, or 0 never to wait")
        if name is not None:
            name = check_name(name)
        self.max_keys = _check_int(max_keys, "max_keys", "e.g. max_keys=10_000")
        self._clock = clock
        # time.monotonic itself for the system clock: one Python call less per decision
        self._now = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._state: RedisState | None = None
        self._store: LimiterStore
        self._mem: MemoryLimiterStore | None
        self._take: Callable[[str, int, float], tuple[float, float]]
        if isinstance(store, str) and store == "memory":
            self._use(self._memory())
        elif isinstance(store, RedisState):
            self._state = store
            self._use(
                self._redis(store, name) if name is not None else cast(LimiterStore, Unnamed("limiter"))
            )
        else:
            self._use(self._check_store(store))
            if name is None:
                name = getattr(store, "name", None)
                if name is None and self._store.shared:
                    raise unnamed_error("limiter")
        self._unnamed = name is None and self._store.shared
        self.name: str = name if name is not None else (UNNAMED if self._unnamed else "default")
        self._lock = threading.Lock()
        self._stats: dict[str, list[int]] = {}  # key -> [rejected, waited], the rare outcomes
        self._exported: list[str] = []
        self._telemetry = Telemetry(
            "limiter", self.name, ("admitted", "rejected", "waited"), metrics=metrics, events=events
        )
        self._admitted = self._telemetry.tally("admitted")
        self._rejected = self._telemetry.tally("rejected")
        self._waited = self._telemetry.tally("waited")
        self._telemetry.on_collect(self._export)
        _live.add(self)

    def __repr__(self) -> str:
        return (
            f"RateLimiter({str(self.rate)!r}, burst={self.burst}, name={self.name!r}, "
            f"store={self._store_name()!r})"
        )

    @property
    def telemetry(self) -> Telemetry:
        """This limiter's counters and event emitter."""
        return self._telemetry

    @property
    def is_local(self) -> bool:
        """True when this process alone decides: the memory store, or Redis down under policy ``local``
        (for information only: callers await the ``a``-methods, which take the memory path themselves)."""
        return self._mem is not None or bool(getattr(self._store, "is_local", False))

    @property
    def store(self) -> LimiterStore:
        """Where this limiter's buckets live."""
        return self._store

    # -- the store ----------------------------------------------------------------------------------

    def _memory(self) -> MemoryLimiterStore:
        return MemoryLimiterStore(
            interval=self.rate.interval, burst=self.burst, max_keys=self.max_keys, now=self._now
        )

    def _redis(self, state: RedisState, name: str) -> RedisLimiterStore:
        return RedisLimiterStore(
            state,
            name,
            interval=self.rate.interval,
            period=self.rate.period,
            limit=self.rate.limit,
            burst=self.burst,
            max_keys=self.max_keys,
            fallback=self._memory(),
        )

    def _check_store(self, store: object) -> LimiterStore:
        if not isinstance(store, LimiterStore) or isinstance(store, type):
            raise ValidationError(
                f"store must be 'memory' or a RedisState (shorthands), or a LimiterStore, got {store!r}; "
                "e.g. store=RedisState('redis://127.0.0.1:6379/0') to share the limit between processes",
                field="store",
            )
        if not math.isclose(store.interval, self.rate.interval) or store.burst != self.burst:
            raise ValidationError(
                f"store was built for an interval of {store.interval} s and burst {store.burst}, not this "
                f"limiter's {self.rate.interval} s and {self.burst}; build the store with the limiter's "
                "rate and burst, or pass store='memory' or a RedisState",
                field="store",
            )
        return store

    def _use(self, store: LimiterStore) -> None:
        self._store = store
        self._mem = store if isinstance(store, MemoryLimiterStore) else None
        self._take = _unnamed_take if isinstance(store, Unnamed) else store.take

    def adopt_name(self, fn: Callable[..., Any]) -> None:
        """A shared limiter without a name takes ``fn``'s ``module.qualname`` (see ``_naming``)."""
        if not self._unnamed:
            return
        name = derived_name(fn)
        claim_derived("limiter", name, self)
        self.name = self._telemetry.key = name
        self._unnamed = False
        if self._state is not None:
            self._use(self._redis(self._state, name))

    # -- acquiring ----------------------------------------------------------------------------------

    def try_acquire(self, key: str = "default", cost: int = 1) -> bool:
        """Take ``cost`` tokens of ``key`` if they are there now; never waits."""
        if cost != 1:
            self._check_cost(cost)
        wait = self._take(key, cost, 0.0)[0]
        if wait == 0.0:
            self._admitted()
            return True
        self._reject(key, cost, -wait)
        return False

    def acquire_fast(self, key: str = "default") -> bool:
        """Take a token of ``key`` now if the store answers without I/O (memory) and none must be waited
        for: True; else False, and nothing is taken or counted: await :meth:`aacquire`.

        For async hot paths (pipelines): no coroutine is made when none is needed, and the caller never asks
        which store is behind the limiter.
        """
        mem = self._mem
        if mem is not None and mem.take(key, 1, 0.0)[0] == 0.0:
            self._admitted()
            return True
        return False

    async def atry_acquire(self, key: str = "default", cost: int = 1) -> bool:
        """:meth:`try_acquire` for async callers (one Redis round trip on the loop's client)."""
        if self._mem is not None:
            return self.try_acquire(key, cost)
        if cost != 1:
            self._check_cost(cost)
        wait = (await self._store.atake(key, cost, 0.0))[0]
        if wait == 0.0:
            self._admitted()
            return True
        self._reject(key, cost, -wait)
        return False

    def acquire(self, key: str = "default", cost: int = 1, timeout: float | None = None) -> float:
        """Take ``cost`` tokens of ``key``, sleeping until they are there; returns the seconds waited.

        The slot is reserved before sleeping, so waiters are served in order. If the wait would exceed
        ``timeout`` (``None``: ``max_wait``), raises :class:`RateLimited` with ``retry_after`` and takes
        nothing. If the sleep is interrupted, the reservation is given back when no one queued behind it.
        """
        if cost != 1:
            self._check_cost(cost)
        max_wait = self.max_wait if timeout is None else _check_seconds(timeout, "timeout", _TIMEOUT_FIX)
        wait, tat = self._take(key, cost, max_wait)
        if wait == 0.0:
            self._admitted()
            return 0.0
        return self._wait(key, cost, wait, tat, max_wait)

    async def aacquire(
        self,
        key: str = "default",
        cost: int = 1,
        timeout: float | None = None,  # noqa: ASYNC109 - the longest wait for a token, as in acquire
    ) -> float:
        """:meth:`acquire` for async callers: the task sleeps once, exactly its wait (``clock.asleep``).

        If the task is cancelled while it waits, the reservation is given back when no one queued behind it.
        """
        if cost != 1:
            self._check_cost(cost)
        max_wait = self.max_wait if timeout is None else _check_seconds(timeout, "timeout", _TIMEOUT_FIX)
        mem = self._mem  # the memory store answers without an await inside
        wait, tat = (
            mem.take(key, cost, max_wait) if mem is not None else await self._store.atake(key, cost, max_wait)
        )
        if wait == 0.0:
            self._admitted()
            return 0.0
        if wait < 0:
            raise self._reject(key, cost, -wait, max_wait)
        self._record_wait(key, wait)
        try:
            await self._clock.asleep(wait)
        except BaseException:
            await self._store.arefund(key, cost, tat)
            raise
        return wait

    # -- as a strategy ------------------------------------------------------------------------------

    def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Acquire a token of the ``"default"`` key (waiting up to ``max_wait``), then call ``fn``."""
        wait, tat = self._take("default", 1, self.max_wait)  # acquire(), inlined: this is the hot path
        if wait == 0.0:
            self._admitted()
        else:
            self._wait("default", 1, wait, tat, self.max_wait)
        return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """:meth:`call` for a coroutine function."""
        await self.aacquire()
        return await fn(*args, **kwargs)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function (or method): each call acquires a token first.

        An unnamed limiter with a shared store takes the function's ``module.qualname`` as its name.
        """
        self.adopt_name(fn)
        return wrap(fn, self.call, self.acall)

    # -- state ----------------------------------------------------------------------------------------

    def snapshot(self, key: str = "default") -> LimiterSnapshot:
        """``key``'s bucket now: tokens available and this process's rejected and waited counts."""
        check_name(key, "key")
        return self._snapshot(key, self._store.available([key])[0])

    async def asnapshot(self, key: str = "default") -> LimiterSnapshot:
        """:meth:`snapshot` for async callers."""
        check_name(key, "key")
        return self._snapshot(key, (await self._store.aavailable([key]))[0])

    def keys(self) -> list[str]:
        """Keys with a bucket in this process (memory), or the keys this process used (Redis)."""
        return self._store.keys()

    def reset(self, key: str = "default") -> None:
        """Make ``key``'s bucket full again and forget its counts."""
        check_name(key, "key")
        self._store.reset(key)
        with self._lock:
            self._stats.pop(key, None)

    async def areset(self, key: str = "default") -> None:
        """:meth:`reset` for async callers."""
        check_name(key, "key")
        await self._store.areset(key)
        with self._lock:
            self._stats.pop(key, None)

    # -- rare paths ---------------------------------------------------------------------------------

    def _store_name(self) -> str:
        return self._store.kind

    def _snapshot(self, key: str, available: float) -> LimiterSnapshot:
        rejected, waited = self._stats.get(key, (0, 0))
        return LimiterSnapshot(
            name=self.name,
            key=key,
            rate=str(self.rate),
            burst=self.burst,
            available=available,
            rejected=rejected,
            waited=waited,
            store=self._store_name(),
        )

    def _count(self, key: str, index: int) -> None:
        with self._lock:
            counts = self._stats.get(key)
            if counts is None:
                if len(self._stats) >= self.max_keys:
                    del self._stats[next(iter(self._stats))]
                counts = self._stats[key] = [0, 0]
            counts[index] += 1

    def _record_wait(self, key: str, wait: float) -> None:
        self._waited()
        self._count(key, 1)
        self._telemetry.observe_wait(wait)

    def _reject(self, key: str, cost: int, retry_after: float, max_wait: float = 0.0) -> RateLimited:
        """Count and announce a rejection; the error to raise when the caller wanted to wait."""
        self._rejected()
        self._count(key, 0)
        self._telemetry.emit("rejected", bucket=key, cost=cost, retry_after=retry_after)
        tokens = "1 token" if cost == 1 else f"{cost} tokens"
        within = f", longer than the timeout of {max_wait:g} s" if max_wait > 0 else ""
        return RateLimited(
            f"rate limiter {self.name!r} has no {tokens} for key {key!r} at {self.rate} with burst "
            f"{self.burst}: retry after {retry_after:.3f} s{within}",
            retry_after=retry_after,
            context={"limiter": self.name, "key": key, "rate": str(self.rate), "burst": self.burst},
        )

    def _wait(self, key: str, cost: int, wait: float, tat: float, max_wait: float) -> float:
        """After a decision that was not an immediate yes: raise, or sleep out the reserved wait."""
        if wait < 0:
            raise self._reject(key, cost, -wait, max_wait)
        self._record_wait(key, wait)
        try:
            self._clock.sleep(wait)
        except BaseException:
            self._store.refund(key, cost, tat)
            raise
        return wait

    def _check_cost(self, cost: object) -> None:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ValidationError(
                f"cost must be an integer >= 1 (tokens to take), got {cost!r}; e.g. cost=1", field="cost"
            )
        if cost > self.burst:
            raise ValidationError(
                f"cost {cost} is more than burst {self.burst}: the bucket never holds that many tokens, so "
                f"the call could never pass; use cost <= {self.burst} or a limiter with burst >= {cost}",
                field="cost",
            )

    def _export(self, registry: MetricsRegistry) -> None:
        """Set the available-tokens gauge of up to :data:`EXPORTED_KEYS` keys (the first ones seen).

        The series of key ``k`` is labelled ``name:k``; the ``"default"`` key's is labelled ``name`` alone, as
        the limiter's other series are (a decorated function's, or an HTTP host's: ``http:api.example.com``).

        On Redis this is one round trip per scrape for all of them (while Redis is down, none).
        """
        exported = self._exported
        if len(exported) < EXPORTED_KEYS:
            known = set(exported)
            exported.extend([key for key in self.keys() if key not in known][: EXPORTED_KEYS - len(exported)])
        if not exported:
            return
        gauge = registry.gauge(AVAILABLE_METRIC, "Tokens a rate limiter's bucket holds now.", labels=("key",))
        values = self._store.available(exported)
        for key, value in zip(exported, values, strict=True):
            gauge.labels(key=self.name if key == "default" else f"{self.name}:{key}").set(value)


_TIMEOUT_FIX: Final = "e.g. timeout=5.0, or 0 not to wait"


def _unnamed_take(key: str, cost: int, max_wait: float) -> tuple[float, float]:
    """``take`` of a shared limiter that has no name yet: refuse with the fix."""
    raise unnamed_error("limiter")


def _check_int(value: object, field: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{field} must be an integer >= 1, got {value!r}; {example}", field=field)
    return value


def _check_seconds(value: object, field: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"{field} must be a finite number of seconds >= 0, got {value!r}; {example}", field=field
        )
    return float(value)
