"""The circuit breaker's state machine in memory: states, permits, validated config, sliding windows.

:class:`MemoryBreakerStore` is the reference: the Redis store's Lua scripts (``_breaker_redis.py``) mirror
it step by step, and one conformance suite runs both. Times are monotonic seconds here and integer
microseconds in Redis; time-window buckets are computed in integer microseconds in both, so they agree.

The CLOSED success path takes no lock: ``acquire`` reads one attribute and a count-window success is one
``itertools.count`` step and one bytearray store. Everything else (failures, slow calls, time windows,
probes, transitions) runs under a short lock, never around the protected call.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from buttress._tally import count_value
from buttress.errors import ValidationError
from buttress.health_types import CheckResult
from buttress.resilience._stores import StoreInfo

__all__ = [
    "FAILURE",
    "NOOP_PERMIT",
    "SLOW",
    "SLOW_FAILURE",
    "STATE_CODES",
    "SUCCESS",
    "Admission",
    "BreakerConfig",
    "BreakerState",
    "CountWindow",
    "MemoryBreakerStore",
    "Permit",
    "StoreView",
    "TimeWindow",
    "Transition",
    "rate",
]

WindowType = Literal["count", "time"]


class BreakerState(enum.StrEnum):
    """Where a breaker is: admitting (CLOSED), refusing (OPEN), probing (HALF_OPEN), or held by hand."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


STATE_CODES: tuple[BreakerState, ...] = tuple(BreakerState)
"""State by its code in Redis (the index): 0 closed, 1 open, 2 half_open, 3 forced_open, 4 disabled."""


class Permit:
    """What ``acquire`` hands out and ``record_*``/``release`` take back.

    A CLOSED permit is shared by every call of one closed period (no allocation per call); a probe permit
    names its lease. ``epoch`` counts state changes, so a report from an earlier period is recognised and
    ignored. ``owner`` is the store that issued it (the Redis store or its in-memory fallback).
    """

    __slots__ = ("epoch", "lease", "owner")

    def __init__(self, epoch: int, lease: int | None, owner: object) -> None:
        self.epoch = epoch
        self.lease = lease
        self.owner = owner

    def __repr__(self) -> str:
        kind = "noop" if self.owner is None else ("closed" if self.lease is None else f"probe {self.lease}")
        return f"Permit({kind}, epoch={self.epoch})"


NOOP_PERMIT = Permit(-1, None, None)
"""Admits a call and records nothing (DISABLED, or Redis unreachable under the ``open`` policy)."""

_NEVER = Permit(-2, None, None)  # compared by identity where no CLOSED permit is current


class Transition(NamedTuple):
    """A state change, to publish as ``resilience.breaker.<what>``."""

    what: str
    source: BreakerState
    target: BreakerState
    failure_rate: float | None
    retry_after: float | None


class Admission(NamedTuple):
    """What a store's acquire decided: a permit, or None with the state, seconds to wait and why."""

    permit: Permit | None
    state: BreakerState
    retry_after: float
    transition: Transition | None
    note: str = ""


class StoreView(NamedTuple):
    """A store's state and window counts, for snapshots."""

    state: BreakerState
    calls: int
    failures: int
    slow_calls: int
    retry_after: float | None
    open_duration: float


# -- configuration ------------------------------------------------------------------------------------


def _positive_int(value: object, field: str, example: str, *, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        off = " or None (rule off)" if optional else ""
        raise ValidationError(
            f"{field} must be an integer >= 1{off}, got {value!r}; e.g. {example}", field=field
        )
    return value


def _duration(value: object, field: str, example: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(
            f"{field} must be a number of seconds > 0, got {value!r}; e.g. {example}", field=field
        )
    return float(value)


def _rate(value: object, field: str, example: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValidationError(
            f"{field} must be a ratio in (0, 1] or None (rule off), got {value!r}; e.g. {example}",
            field=field,
        )
    return float(value)


def _buckets(window: float) -> int:
    """Time-window buckets: about one per second, at least 10 and at most 120."""
    return min(max(round(window), 10), 120)


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A breaker's validated settings (see :class:`~buttress.resilience.CircuitBreaker` for each)."""

    consecutive_failures: int | None = 5
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    slow_call_duration: float = 60.0
    window: float = 100
    window_type: WindowType = "count"
    minimum_calls: int = 10
    open_duration: float = 30.0
    open_duration_max: float = 300.0
    half_open_probes: int = 1
    probe_lease: float = 60.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "minimum_calls", _positive_int(self.minimum_calls, "minimum_calls", "10"))
        set_(
            self,
            "consecutive_failures",
            _positive_int(self.consecutive_failures, "consecutive_failures", "5", optional=True),
        )
        set_(self, "failure_rate", _rate(self.failure_rate, "failure_rate", "0.5"))
        set_(self, "slow_call_rate", _rate(self.slow_call_rate, "slow_call_rate", "0.8"))
        if self.consecutive_failures is None and self.failure_rate is None and self.slow_call_rate is None:
            raise ValidationError(
                "a breaker needs at least one trip rule: set consecutive_failures, failure_rate or "
                "slow_call_rate; e.g. consecutive_failures=5 or failure_rate=0.5",
                field="consecutive_failures",
            )
        set_(self, "slow_call_duration", _duration(self.slow_call_duration, "slow_call_duration", "5.0"))
        if self.window_type not in ("count", "time"):
            raise ValidationError(
                f"window_type must be 'count' (last N calls) or 'time' (last N seconds), "
                f"got {self.window_type!r}; e.g. window_type='time'",
                field="window_type",
            )
        if self.window_type == "count":
            set_(self, "window", _positive_int(self.window, "window", "100 (calls)"))
            # a count window never holds more calls than its size (Resilience4j caps it the same way)
            set_(self, "minimum_calls", min(self.minimum_calls, int(self.window)))
        else:
            set_(self, "window", _duration(self.window, "window", "60 (seconds)"))
        set_(self, "open_duration", _duration(self.open_duration, "open_duration", "30.0"))
        set_(self, "open_duration_max", _duration(self.open_duration_max, "open_duration_max", "300.0"))
        if self.open_duration_max < self.open_duration:
            raise ValidationError(
                f"open_duration_max must be >= open_duration ({self.open_duration}), got "
                f"{self.open_duration_max!r}; e.g. open_duration_max={self.open_duration * 10} "
                "(or equal to open_duration for a fixed open period)",
                field="open_duration_max",
            )
        set_(self, "half_open_probes", _positive_int(self.half_open_probes, "half_open_probes", "1"))
        set_(self, "probe_lease", _duration(self.probe_lease, "probe_lease", "60.0"))

    @property
    def buckets(self) -> int:
        """Slots of the window: calls for a count window, buckets for a time window."""
        return int(self.window) if self.window_type == "count" else _buckets(self.window)

    @property
    def bucket_us(self) -> int:
        """Width of one time-window bucket in integer microseconds (1 for a count window)."""
        if self.window_type == "count":
            return 1
        return max(round(self.window * 1_000_000 / self.buckets), 1)

    @property
    def ttl(self) -> float:
        """Seconds a shared state key outlives its last write: longer than any period it records."""
        window = self.window if self.window_type == "time" else 0.0
        return max(self.open_duration_max, window, self.probe_lease) * 2 + 60


# -- windows ------------------------------------------------------------------------------------------

SUCCESS, FAILURE, SLOW, SLOW_FAILURE = 0, 1, 2, 3
"""Outcome codes: bit 0 is failure, bit 1 is slow."""


class CountWindow:
    """The last ``size`` outcomes in a ring.

    A plain success is ``ring[next(seq) % size] = SUCCESS``: one atomic count step and one byte store,
    safe without the lock (a racing :meth:`clear` at worst lets one success land in the new ring).
    """

    __slots__ = ("ring", "seq", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring = bytearray(size)
        self.seq = itertools.count()

    def clear(self) -> None:
        self.ring = bytearray(self.size)
        self.seq = itertools.count()

    def add(self, code: int, now: float) -> tuple[int, int, int]:
        self.ring[next(self.seq) % self.size] = code
        return self.stats(now)

    def stats(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window."""
        ring = self.ring
        both = ring.count(SLOW_FAILURE)
        calls = min(count_value(self.seq), self.size)
        return calls, ring.count(FAILURE) + both, ring.count(SLOW) + both


class TimeWindow:
    """Outcomes of the last ``window`` seconds in buckets, with running totals (call under the lock)."""

    __slots__ = ("_buckets", "_head", "_totals", "bucket_us", "size")

    def __init__(self, size: int, bucket_us: int) -> None:
        self.size = size
        self.bucket_us = bucket_us
        self.clear()

    def clear(self) -> None:
        self._buckets = [[0, 0, 0] for _ in range(self.size)]
        self._totals = [0, 0, 0]
        self._head: int | None = None

    def _tick(self, now: float) -> int:
        return round(now * 1_000_000) // self.bucket_us

    def _advance(self, tick: int) -> None:
        """Drop the buckets that left the window by ``tick`` (called when the tick moved on)."""
        head = self._head
        if head is None or tick - head >= self.size:
            self.clear()
        else:  # monotonic time: tick > head here
            totals = self._totals
            for t in range(head + 1, tick + 1):
                bucket = self._buckets[t % self.size]
                totals[0] -= bucket[0]
                totals[1] -= bucket[1]
                totals[2] -= bucket[2]
                bucket[0] = bucket[1] = bucket[2] = 0
        self._head = tick

    def add(self, code: int, now: float) -> tuple[int, int, int]:
        tick = round(now * 1_000_000) // self.bucket_us
        if tick != self._head:
            self._advance(tick)
        bucket = self._buckets[tick % self.size]
        failed, slow = code & 1, code >> 1
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        totals = self._totals
        totals[0] += 1
        totals[1] += failed
        totals[2] += slow
        return totals[0], totals[1], totals[2]

    def stats(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window, without changing it."""
        head = self._head
        tick = self._tick(now)
        if head is None or tick - head >= self.size:
            return 0, 0, 0
        calls, failures, slow = self._totals
        for t in range(head + 1, tick + 1):
            bucket = self._buckets[t % self.size]
            calls -= bucket[0]
            failures -= bucket[1]
            slow -= bucket[2]
        return calls, failures, slow


def rate(part: int, calls: int) -> float | None:
    """``part`` as a share of ``calls``; None for an empty window (no rate yet, rather than 0)."""
    return part / calls if calls else None


# -- the store ----------------------------------------------------------------------------------------


class MemoryBreakerStore:
    """One breaker's state in this process (also the Redis store's fallback under the ``local`` policy).

    The reference :class:`~buttress.resilience.BreakerStore`: sync, no I/O, time from ``now`` (the
    clock's monotonic seconds). Its async twins call the sync methods.

    ``fast`` is the permit an acquire can return without a lock (the CLOSED permit, or
    :data:`NOOP_PERMIT` when DISABLED), else None; ``closed`` is the CLOSED permit of the current
    period (a sentinel otherwise), ``ring`` the count window (None for a time window) and ``streak`` the
    consecutive failures: the breaker reads them to record a plain success without a call or a lock.

    A report for a permit of another epoch is ignored: the state it described is gone (its outcome still
    shows in the breaker's tallies). HALF_OPEN admits at most ``half_open_probes`` trial calls in one
    period, finished or not (a released permit gives its trial back); a probe lease that expires before
    its probe reports is a failed probe, and the next step of the period reopens the breaker.
    """

    kind = "memory"
    shared = False

    def __init__(self, config: BreakerConfig, now: Callable[[], float]) -> None:
        self.config = config
        self._now = now
        self._lock = threading.Lock()
        self.window: CountWindow | TimeWindow = (
            CountWindow(config.buckets)
            if config.window_type == "count"
            else TimeWindow(config.buckets, config.bucket_us)
        )
        self.ring: CountWindow | None = self.window if isinstance(self.window, CountWindow) else None
        self._slow_rule = config.slow_call_rate is not None
        self.state = BreakerState.CLOSED
        self.epoch = 0
        self.closed = Permit(0, None, self)
        self.fast: Permit | None = self.closed
        self.streak = 0
        self._open_until = 0.0
        self._open_duration = config.open_duration
        self._leases: dict[int, float] = {}
        self._lease_ids = itertools.count(1)
        self._probe_successes = 0

    @property
    def known_state(self) -> BreakerState:
        return self.state

    # -- transitions (call with the lock held) ---------------------------------------------------------

    def _enter(self, state: BreakerState) -> BreakerState:
        source = self.state
        self.state = state
        self.epoch += 1
        self._leases.clear()
        self._probe_successes = 0
        if state is BreakerState.CLOSED:
            self.closed = self.fast = Permit(self.epoch, None, self)
        else:
            self.closed = _NEVER
            self.fast = NOOP_PERMIT if state is BreakerState.DISABLED else None
        return source

    def _open(self, now: float, duration: float, failure_rate: float | None) -> Transition:
        source = self._enter(BreakerState.OPEN)
        self.streak = 0
        self._open_duration = duration
        self._open_until = now + duration
        return Transition("opened", source, BreakerState.OPEN, failure_rate, duration)

    def _close(self, what: str) -> Transition:
        source = self._enter(BreakerState.CLOSED)
        self.window.clear()
        self.streak = 0
        self._open_duration = self.config.open_duration
        self._open_until = 0.0
        return Transition(what, source, BreakerState.CLOSED, None, None)

    # -- acquire ---------------------------------------------------------------------------------------

    def acquire(self) -> Admission:
        """Admit a call (returning a permit) or say why not; OPEN turns HALF_OPEN here once it is time."""
        fast = self.fast
        if fast is not None:
            return Admission(fast, self.state, 0.0, None)
        with self._lock:
            state = self.state
            if (
                state is BreakerState.CLOSED or state is BreakerState.DISABLED
            ):  # changed since `fast` was read
                return Admission(
                    self.closed if state is BreakerState.CLOSED else NOOP_PERMIT, state, 0.0, None
                )
            if state is BreakerState.FORCED_OPEN:
                return Admission(None, state, self._open_duration, None)
            now = self._now()
            if state is BreakerState.HALF_OPEN:
                return self._probe(now)
            if now < self._open_until:
                return Admission(None, state, self._open_until - now, None)
            source = self._enter(BreakerState.HALF_OPEN)
            return self._probe(now, Transition("half_opened", source, BreakerState.HALF_OPEN, None, None))

    def _probe(self, now: float, transition: Transition | None = None) -> Admission:
        """HALF_OPEN: a probe permit while the period has trial calls left (call with the lock held)."""
        leases = self._leases
        if self._lease_expired(now):
            reopened = self._reopen(now)
            return Admission(None, BreakerState.OPEN, self._open_duration, reopened)
        if len(leases) + self._probe_successes >= self.config.half_open_probes:
            return Admission(None, BreakerState.HALF_OPEN, min(leases.values()) - now, None)
        lease = next(self._lease_ids)
        leases[lease] = now + self.config.probe_lease
        return Admission(Permit(self.epoch, lease, self), BreakerState.HALF_OPEN, 0.0, transition)

    # -- record ----------------------------------------------------------------------------------------

    def record(self, permit: Permit, code: int) -> Transition | None:
        """Record an outcome (``code``: bit 0 failed, bit 1 slow); returns the transition it caused."""
        if permit is self.closed and code == SUCCESS:  # a plain success never trips: no rule to check
            ring = self.ring
            if ring is not None:
                ring.ring[next(ring.seq) % ring.size] = SUCCESS
                if self.streak:
                    self.clear_streak()
                return None
            with self._lock:  # (a racing transition at worst gets one stale success, as with the ring)
                self.window.add(SUCCESS, self._now())
                self.streak = 0
            return None
        if permit.owner is not self:
            return None
        with self._lock:
            if permit.lease is None:
                return self._record_closed(code) if permit is self.closed else None
            return self._record_probe(permit, code)

    def clear_streak(self) -> None:
        """A success ends a run of consecutive failures."""
        with self._lock:
            self.streak = 0

    def _record_closed(self, code: int) -> Transition | None:
        now = self._now()
        calls, failures, slow = self.window.add(code, now)
        failed = code & FAILURE
        self.streak = self.streak + 1 if failed else 0
        config = self.config
        trip = bool(failed and config.consecutive_failures and self.streak >= config.consecutive_failures)
        if not trip and calls >= config.minimum_calls:
            trip = bool(
                (failed and config.failure_rate and failures / calls >= config.failure_rate)
                or (code & SLOW and config.slow_call_rate and slow / calls >= config.slow_call_rate)
            )
        if not trip:
            return None
        return self._open(now, config.open_duration, rate(failures, calls))

    def _lease_expired(self, now: float) -> bool:
        """A probe held its lease past ``probe_lease`` without reporting (call with the lock held)."""
        return any(expires <= now for expires in self._leases.values())

    def _reopen(self, now: float) -> Transition:
        """A probe failed (or never answered): OPEN again for twice as long, up to the cap."""
        return self._open(now, min(self._open_duration * 2, self.config.open_duration_max), None)

    def _record_probe(self, permit: Permit, code: int) -> Transition | None:
        if self.state is not BreakerState.HALF_OPEN or permit.epoch != self.epoch:
            return None
        now = self._now()
        if self._lease_expired(now):  # this probe's or another's: the period ends as a failed probe
            return self._reopen(now)
        if self._leases.pop(permit.lease, None) is None:  # type: ignore[arg-type]
            return None  # released, or reported twice
        if code & FAILURE or (code & SLOW and self._slow_rule):
            return self._reopen(now)
        self._probe_successes += 1
        if self._probe_successes >= self.config.half_open_probes:
            return self._close("closed")
        return None

    def release(self, permit: Permit) -> None:
        """The call did not happen: free its probe lease, record nothing."""
        if permit.lease is None or permit.owner is not self:
            return
        with self._lock:
            if permit.epoch == self.epoch:
                self._leases.pop(permit.lease, None)

    # -- control and view ------------------------------------------------------------------------------

    def control(self, target: BreakerState) -> tuple[bool, Transition | None]:
        """``reset`` (CLOSED), ``isolate`` (FORCED_OPEN) or ``disable`` (DISABLED); always reached."""
        with self._lock:
            if target is BreakerState.CLOSED:
                return True, self._close("reset")
            if self.state is target:
                return True, None
            source = self._enter(target)
            what = "forced_open" if target is BreakerState.FORCED_OPEN else "disabled"
            return True, Transition(what, source, target, None, None)

    def view(self) -> StoreView:
        with self._lock:
            now = self._now()
            calls, failures, slow = self.window.stats(now)
            state = self.state
            retry_after: float | None = None
            if state is BreakerState.OPEN:
                retry_after = max(self._open_until - now, 0.0)
            elif state is BreakerState.HALF_OPEN:
                leases = self._leases
                retry_after = 0.0
                if len(leases) + self._probe_successes >= self.config.half_open_probes:
                    retry_after = max(min(leases.values()) - now, 0.0)
            return StoreView(state, calls, failures, slow, retry_after, self._open_duration)

    # -- async twins (no I/O: the sync methods) and reporting -----------------------------------------

    async def aacquire(self) -> Admission:
        return self.acquire()

    async def arecord(self, permit: Permit, code: int) -> Transition | None:
        return self.record(permit, code)

    async def arelease(self, permit: Permit) -> None:
        self.release(permit)

    async def acontrol(self, target: BreakerState) -> tuple[bool, Transition | None]:
        return self.control(target)

    async def aview(self) -> StoreView:
        return self.view()

    def info(self) -> StoreInfo:
        return StoreInfo("memory", shared=False, available=True, detail="this process only")

    def check(self) -> CheckResult:
        return CheckResult("pass", f"breaker state in memory: {self.state.value}")
