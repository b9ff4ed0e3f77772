"""RetryBudget: retries allowed = ``ratio`` x calls in the last ``window`` + ``min_retries`` (Finagle-style).

Per-call retry limits multiply traffic during an outage (3 attempts = 3x load on a service that is
already down). A budget bounds retries across every call that shares it: at most ``ratio`` retries per
call over a sliding window, plus ``min_retries`` per window so a quiet service can still retry. Backed by
Redis, one budget spans the whole fleet.

The window slides in ``window / 10`` steps: counts live in 10 buckets, and the budget sums the buckets of
the last ``window`` (the current bucket included), so a call counts for between ``0.9 * window`` and
``window``. A retry may go when ``retries + 1 <= ratio * calls + min_retries``. Bucket edges are whole
multiples of the step in the store's time (the clock's monotonic time in memory, Redis time or the
injected clock's wall time in Redis). In memory, ``record_call`` is lock-free: a call that races a bucket
edge may be counted in the neighbouring bucket (or, rarely, lost), which no budget decision notices.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from buttress._tally import count_value
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.resilience._decorate import check_name
from buttress.resilience._redis_state import RedisState
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry
    from buttress.resilience._budget_redis import RedisBudget

__all__ = ["BUCKETS", "BudgetSnapshot", "RetryBudget", "Ring", "allows", "available"]

BUCKETS: Final = 10
OUTCOMES: Final = ("call", "spent", "denied")
_NO_EPOCH: Final = -(2**62)


def allows(retries: int, calls: int, ratio: float, min_retries: int) -> bool:
    """The rule, also written in Lua: one more retry fits in ``ratio * calls + min_retries``."""
    return retries + 1 <= ratio * calls + min_retries


def available(retries: int, calls: int, ratio: float, min_retries: int) -> int:
    """How many more retries the budget allows now."""
    return max(0, math.floor(ratio * calls + min_retries) - retries)


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """The budget's counts over the current window."""

    name: str
    calls: int
    retries: int
    available: int
    ratio: float
    window: float
    store: str
    degraded: bool = False
    """True while a Redis store is unreachable and the numbers come from this process alone."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Ring:
    """The memory store: 10 buckets of (calls, retries), each stamped with its epoch (time // step)."""

    __slots__ = ("_add", "_calls", "_edge", "_epoch", "_epochs", "_lock", "_now", "_retries", "step_us")

    def __init__(self, window: float, now: Callable[[], float]) -> None:
        self.step_us = max(1, round(window * 1_000_000 / BUCKETS))
        self._now = now
        self._calls = [itertools.count() for _ in range(BUCKETS)]
        self._retries = [0] * BUCKETS
        self._epochs = [_NO_EPOCH] * BUCKETS
        self._epoch = _NO_EPOCH
        self._edge = -math.inf
        self._add = self._calls[0].__next__
        self._lock = threading.Lock()

    def record(self) -> None:
        """Count a call: one clock read and one C call, unless a bucket edge was crossed."""
        if self._now() >= self._edge:
            with self._lock:
                self._rotate()
        self._add()

    def _rotate(self) -> int:
        """Make the current bucket the one of now (under the lock); returns the current epoch."""
        step = self.step_us
        epoch = round(self._now() * 1_000_000) // step
        if epoch != self._epoch:  # a later bucket (monotonic time): its slot holds a stale one, reset it
            slot = epoch % BUCKETS
            self._calls[slot] = itertools.count()
            self._retries[slot] = 0
            self._epochs[slot] = epoch
            self._epoch = epoch
            self._add = self._calls[slot].__next__
            # half a microsecond early, so float noise never skips an edge that the rounding sees
            self._edge = ((epoch + 1) * step - 0.5) / 1_000_000
        return epoch

    def _counts(self, epoch: int) -> tuple[int, int]:
        calls = retries = 0
        oldest = epoch - BUCKETS
        for slot in range(BUCKETS):
            if oldest < self._epochs[slot] <= epoch:
                calls += count_value(self._calls[slot])
                retries += self._retries[slot]
        return calls, retries

    def try_spend(self, ratio: float, min_retries: int) -> tuple[bool, int, int]:
        """Take one retry if it fits: (allowed, calls, retries) with the retry counted if allowed."""
        with self._lock:
            epoch = self._rotate()
            calls, retries = self._counts(epoch)
            if not allows(retries, calls, ratio, min_retries):
                return False, calls, retries
            self._retries[epoch % BUCKETS] += 1
            return True, calls, retries + 1

    def counts(self) -> tuple[int, int]:
        """(calls, retries) in the window now."""
        with self._lock:
            return self._counts(self._rotate())


def _check_ratio(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"ratio must be a finite number >= 0 (retries allowed per call: 0.2 = one retry per five "
            f"calls), got {value!r}; e.g. 0.2",
            field="ratio",
        )
    return float(value)


def _check_window(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.01 <= value <= 86_400:
        raise ValidationError(
            f"window must be a number of seconds between 0.01 and 86400 (how far back calls and retries "
            f"count), got {value!r}; e.g. 10.0",
            field="window",
        )
    return float(value)


def _check_min_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"min_retries must be an integer >= 0 (retries allowed per window even with few calls), "
            f"got {value!r}; e.g. 10",
            field="min_retries",
        )
    return value


class RetryBudget:
    """Retries allowed = ratio * calls in the last `window` seconds + min_retries (Finagle-style), so an
    outage cannot become a retry storm.

    Give it to :class:`~buttress.resilience.Retry` (``budget=``), which calls :meth:`record_call` once per
    call and :meth:`try_spend` before each retry. ``store`` is ``"memory"`` (this process) or a
    :class:`RedisState` (every process using the same namespace and ``name``); while Redis is
    unreachable the state's policy applies: ``local`` keeps a budget in this process, ``open`` allows
    every retry, ``closed`` denies them all.
    """

    __slots__ = (
        "_denying",
        "_now",
        "_redis",
        "_ring",
        "_t_call",
        "_t_denied",
        "_t_spent",
        "clock",
        "min_retries",
        "name",
        "ratio",
        "telemetry",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        window: float = 10.0,
        min_retries: int = 10,
        *,
        name: str = "default",
        store: Literal["memory"] | RedisState = "memory",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.ratio = _check_ratio(ratio)
        self.window = _check_window(window)
        self.min_retries = _check_min_retries(min_retries)
        self.name = check_name(name)
        self.clock = clock
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._ring = Ring(self.window, self._now)
        self._redis: RedisBudget | None = None
        if isinstance(store, RedisState):
            from buttress.resilience._budget_redis import RedisBudget  # noqa: PLC0415 - only with Redis

            self._redis = RedisBudget(store, self.name, self.window, twin=self._ring)
        elif store != "memory":
            raise ValidationError(
                f"store must be 'memory' or a RedisState, got {store!r}; "
                "e.g. store=RedisState('redis://127.0.0.1:6379/0')",
                field="store",
            )
        self._denying = False
        self.telemetry = Telemetry("budget", self.name, OUTCOMES, metrics=metrics, events=events)
        self._t_call = self.telemetry.tally("call")
        self._t_spent = self.telemetry.tally("spent")
        self._t_denied = self.telemetry.tally("denied")

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, window={self.window}, min_retries={self.min_retries}, "
            f"name={self.name!r}, store={self.store!r})"
        )

    @property
    def store(self) -> str:
        return "memory" if self._redis is None else "redis"

    def record_call(self) -> None:
        """Count a call (every first attempt): deposits ``ratio`` retries into the window."""
        self._t_call()
        if self._redis is None:
            ring = self._ring
            if self._now() >= ring._edge:
                ring.record()
            else:
                ring._add()
        else:
            self._redis.record()

    @property
    def is_local(self) -> bool:
        """True for the memory store: async callers may use the sync methods (no I/O, no await)."""
        return self._redis is None

    async def arecord_call(self) -> None:
        """:meth:`record_call` for async callers (no blocking Redis call on the event loop)."""
        self._t_call()
        if self._redis is None:
            self._ring.record()
        else:
            await self._redis.arecord()

    def try_spend(self) -> bool:
        """A retry wants to go: True takes one retry from the budget, False means do not retry."""
        if self._redis is None:
            allowed, calls, retries = self._ring.try_spend(self.ratio, self.min_retries)
        else:
            allowed, calls, retries = self._redis.try_spend(self.ratio, self.min_retries)
        return self._decided(allowed, calls, retries)

    async def atry_spend(self) -> bool:
        """:meth:`try_spend` for async callers."""
        if self._redis is None:
            allowed, calls, retries = self._ring.try_spend(self.ratio, self.min_retries)
        else:
            allowed, calls, retries = await self._redis.atry_spend(self.ratio, self.min_retries)
        return self._decided(allowed, calls, retries)

    def _decided(self, allowed: bool, calls: int, retries: int) -> bool:
        if allowed:
            self._t_spent()
            self._denying = False
            return True
        self._t_denied()
        if not self._denying:  # one event per run of denials, not one per denied retry
            self._denying = True
            self.telemetry.emit(
                "exhausted",
                calls=calls,
                retries=retries,
                ratio=self.ratio,
                window=self.window,
                min_retries=self.min_retries,
            )
        return False

    def snapshot(self) -> BudgetSnapshot:
        """Calls, retries and retries still available in the current window."""
        return self._snapshot(None if self._redis is None else self._redis.counts())

    async def asnapshot(self) -> BudgetSnapshot:
        """:meth:`snapshot` for async callers."""
        return self._snapshot(None if self._redis is None else await self._redis.acounts())

    def _snapshot(self, counts: tuple[int, int] | None) -> BudgetSnapshot:
        degraded = self._redis is not None and counts is None
        calls, retries = self._ring.counts() if counts is None else counts
        return BudgetSnapshot(
            name=self.name,
            calls=calls,
            retries=retries,
            available=available(retries, calls, self.ratio, self.min_retries),
            ratio=self.ratio,
            window=self.window,
            store=self.store,
            degraded=degraded,
        )
