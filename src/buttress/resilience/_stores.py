"""The backend contract of resilience state: one Protocol per part, what each method promises.

A breaker, a rate limiter and a retry budget each keep their state in a *store*, bound to that one
strategy (its name, its config). Two implementations ship side by side, named alike:
``MemoryBreakerStore``/``RedisBreakerStore``, ``MemoryLimiterStore``/``RedisLimiterStore`` and
``MemoryBudgetStore``/``RedisBudgetStore``. The memory one is the reference model (sync, I/O-free, time
passed in through ``now``); the Redis one mirrors it step by step in Lua, and
``tests/conformance/test_resilience_conformance.py`` plus a hypothesis stateful test per part hold them
to the same answers. A new backend implements the Protocol and joins that suite (``docs/backends.md``).

Outage policy (all three parts): they guard calls, they do not hold data that must not be lost, so a
store whose server is unreachable never raises on the call path. It follows its
:data:`~buttress.resilience.StorePolicy` (``local``: decide with an in-memory fallback; ``open``: admit;
``closed``: refuse), reports ``available=False`` in :meth:`info` and ``warn`` in :meth:`check`, and
goes back to the server by itself once it answers again. Only an explicit control (``reset``,
``isolate``, ``disable``) reports that it could not reach the server (``control`` returns ``False``), so
the strategy can raise :class:`~buttress.errors.BackendUnavailable` to the operator who asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from buttress.health_types import CheckResult
    from buttress.resilience._breaker_state import (
        Admission,
        BreakerConfig,
        BreakerState,
        Permit,
        StoreView,
        Transition,
    )

__all__ = ["BreakerStore", "BudgetStore", "LimiterStore", "StoreInfo"]


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store reports about itself for health, stats and logs."""

    kind: str
    """``memory`` or ``redis`` (a third-party store picks its own word)."""
    shared: bool
    """True when every process using the same name sees the same state."""
    available: bool
    """False while its server is unreachable and the outage policy decides."""
    detail: str = ""
    """Where the state lives (a key, with the server URL's password masked), or why it is degraded."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class BreakerStore(Protocol):
    """The state of one circuit breaker (see :class:`~buttress.resilience.CircuitBreaker`).

    Contract:

    - :meth:`acquire` admits a call with a :class:`~buttress.resilience.Permit` or refuses it with the
      state and the seconds to wait; OPEN turns HALF_OPEN there once ``open_duration`` has passed, and
      a HALF_OPEN admission holds a probe lease that expires after ``probe_lease``.
    - :meth:`record` takes an outcome code (bit 0 failed, bit 1 slow) for a permit it issued and
      returns the transition it caused, if any. A permit of an earlier period (another epoch) or an
      expired lease is ignored (returns None): the state it described is gone.
    - :meth:`release` frees a permit's lease and records nothing.
    - :meth:`control` forces CLOSED (reset: empty window, first open duration), FORCED_OPEN or DISABLED;
      it returns ``(reached, transition)``, ``reached`` False when a shared store could not reach its
      server (the change then holds in this process only).
    - :meth:`view` reads the state and the window counts without changing them.
    - Every method has an ``a``-prefixed async twin with the same parameters and results; none of them
      raises for an unreachable server (see the module's outage policy). ``known_state`` is the last
      state seen, without I/O (for a scrape-time gauge).
    """

    @property
    def config(self) -> BreakerConfig: ...
    @property
    def kind(self) -> str: ...
    @property
    def shared(self) -> bool: ...
    @property
    def known_state(self) -> BreakerState: ...

    def acquire(self) -> Admission: ...
    async def aacquire(self) -> Admission: ...
    def record(self, permit: Permit, code: int) -> Transition | None: ...
    async def arecord(self, permit: Permit, code: int) -> Transition | None: ...
    def release(self, permit: Permit) -> None: ...
    async def arelease(self, permit: Permit) -> None: ...
    def control(self, target: BreakerState) -> tuple[bool, Transition | None]: ...
    async def acontrol(self, target: BreakerState) -> tuple[bool, Transition | None]: ...
    def view(self) -> StoreView: ...
    async def aview(self) -> StoreView: ...
    def info(self) -> StoreInfo: ...
    def check(self) -> CheckResult: ...


@runtime_checkable
class LimiterStore(Protocol):
    """The GCRA buckets of one rate limiter, one per key (see :class:`~buttress.resilience.RateLimiter`).

    Contract:

    - :meth:`take` decides ``cost`` tokens of ``key``: ``(0.0, tat)`` admitted now; ``(wait, tat)`` with
      ``0 < wait <= max_wait`` admitted after ``wait`` seconds, the slot already reserved (later callers
      queue behind it); ``(-retry_after, nan)`` refused, nothing taken. A wait under a microsecond is
      none. An unknown key is a full bucket of ``burst`` tokens refilling one per ``interval`` seconds.
    - :meth:`refund` gives a reservation back only if no one reserved after it (``tat`` still current).
    - :meth:`available` reports the tokens in each key now, changing nothing; :meth:`reset` makes a key's
      bucket full again; :meth:`keys` lists the keys this process used (at most ``max_keys``).
    - Every I/O method has an ``a``-prefixed async twin; none raises for an unreachable server.
    """

    @property
    def interval(self) -> float: ...
    @property
    def burst(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def shared(self) -> bool: ...

    def take(self, key: str, cost: int, max_wait: float) -> tuple[float, float]: ...
    async def atake(self, key: str, cost: int, max_wait: float) -> tuple[float, float]: ...
    def refund(self, key: str, cost: int, tat: float) -> None: ...
    async def arefund(self, key: str, cost: int, tat: float) -> None: ...
    def available(self, keys: Sequence[str]) -> list[float]: ...
    async def aavailable(self, keys: Sequence[str]) -> list[float]: ...
    def reset(self, key: str) -> None: ...
    async def areset(self, key: str) -> None: ...
    def keys(self) -> list[str]: ...
    def info(self) -> StoreInfo: ...
    def check(self) -> CheckResult: ...


@runtime_checkable
class BudgetStore(Protocol):
    """The sliding window of one retry budget (see :class:`~buttress.resilience.RetryBudget`).

    Contract:

    - The window is 10 buckets of ``window / 10`` seconds, whole multiples of the step in the store's
      time; a call or retry counts while its bucket is one of the last 10.
    - :meth:`record` counts one call. :meth:`try_spend` takes one retry when
      ``retries + 1 <= ratio * calls + min_retries`` and returns ``(allowed, calls, retries)``, the
      retry included when allowed; the check and the count are one atomic step.
    - :meth:`counts` returns ``(calls, retries, degraded)``: ``degraded`` is True while a shared store's
      server is unreachable and the numbers come from this process alone.
    - Every method has an ``a``-prefixed async twin; none raises for an unreachable server.
    """

    @property
    def window(self) -> float: ...
    @property
    def kind(self) -> str: ...
    @property
    def shared(self) -> bool: ...

    def record(self) -> None: ...
    async def arecord(self) -> None: ...
    def try_spend(self, ratio: float, min_retries: int) -> tuple[bool, int, int]: ...
    async def atry_spend(self, ratio: float, min_retries: int) -> tuple[bool, int, int]: ...
    def counts(self) -> tuple[int, int, bool]: ...
    async def acounts(self) -> tuple[int, int, bool]: ...
    def info(self) -> StoreInfo: ...
    def check(self) -> CheckResult: ...
