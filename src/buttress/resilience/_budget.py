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
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.resilience._budget_memory import BUCKETS, MemoryBudgetStore, allows
from buttress.resilience._budget_redis import RedisBudgetStore
from buttress.resilience._decorate import check_name
from buttress.resilience._naming import unnamed_error
from buttress.resilience._redis_state import RedisState
from buttress.resilience._stores import BudgetStore
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["BUCKETS", "BudgetSnapshot", "RetryBudget", "allows", "available"]

OUTCOMES: Final = ("call", "spent", "denied")


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
    call and :meth:`try_spend` before each retry. ``store`` is any
    :class:`~buttress.resilience.BudgetStore` built for this window, or a shorthand: ``"memory"`` (this
    process) or a :class:`RedisState` (every process using the same key prefix and ``name``; a shared
    budget needs a ``name``, since it decorates nothing to take one from); while Redis is unreachable the
    state's policy applies: ``local`` keeps a budget in this process, ``open`` allows every retry,
    ``closed`` denies them all.
    """

    __slots__ = (
        "_denying",
        "_mem",
        "_now",
        "_store",
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
        name: str | None = None,
        store: Literal["memory"] | RedisState | BudgetStore = "memory",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.ratio = _check_ratio(ratio)
        self.window = _check_window(window)
        self.min_retries = _check_min_retries(min_retries)
        if name is not None:
            name = check_name(name)
        self.clock = clock
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._store: BudgetStore
        self._mem: MemoryBudgetStore | None = None
        if isinstance(store, str) and store == "memory":
            self._store = self._mem = MemoryBudgetStore(self.window, self._now)
        elif isinstance(store, RedisState):
            if name is None:  # a budget decorates nothing, so it has no function to take a name from
                raise unnamed_error("budget")
            self._store = RedisBudgetStore(
                store, name, self.window, fallback=MemoryBudgetStore(self.window, self._now)
            )
        else:
            self._store = _check_store(store, self.window)
            if isinstance(store, MemoryBudgetStore):
                self._mem = store
            if name is None:
                name = getattr(store, "name", None)
                if name is None and store.shared:
                    raise unnamed_error("budget")
        self.name: str = name if name is not None else "default"
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
        """The store's kind: ``memory``, ``redis`` or a custom store's."""
        return self._store.kind

    @property
    def backend(self) -> BudgetStore:
        """Where this budget's window lives."""
        return self._store

    def record_call(self) -> None:
        """Count a call (every first attempt): deposits ``ratio`` retries into the window."""
        self._t_call()
        mem = self._mem
        if mem is not None:
            if self._now() >= mem._edge:
                mem.record()
            else:
                mem._add()
        else:
            self._store.record()

    @property
    def is_local(self) -> bool:
        """True for the memory store (for information only: callers await the ``a``-methods, which take
        the memory store's sync path themselves)."""
        return self._mem is not None

    async def arecord_call(self) -> None:
        """:meth:`record_call` for async callers (no blocking Redis call on the event loop)."""
        self._t_call()
        mem = self._mem
        if mem is not None:
            if self._now() >= mem._edge:
                mem.record()
            else:
                mem._add()
        else:
            await self._store.arecord()

    def try_spend(self) -> bool:
        """A retry wants to go: True takes one retry from the budget, False means do not retry."""
        allowed, calls, retries = self._store.try_spend(self.ratio, self.min_retries)
        return self._decided(allowed, calls, retries)

    async def atry_spend(self) -> bool:
        """:meth:`try_spend` for async callers."""
        mem = self._mem
        if mem is not None:
            allowed, calls, retries = mem.try_spend(self.ratio, self.min_retries)
        else:
            allowed, calls, retries = await self._store.atry_spend(self.ratio, self.min_retries)
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
        return self._snapshot(*self._store.counts())

    async def asnapshot(self) -> BudgetSnapshot:
        """:meth:`snapshot` for async callers."""
        return self._snapshot(*(await self._store.acounts()))

    def _snapshot(self, calls: int, retries: int, degraded: bool) -> BudgetSnapshot:
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


def _check_store(store: object, window: float) -> BudgetStore:
    """``store`` as a BudgetStore built for ``window``, or a ValidationError naming the fix."""
    if not isinstance(store, BudgetStore) or isinstance(store, type):
        raise ValidationError(
            f"store must be 'memory' or a RedisState (shorthands), or a BudgetStore, got {store!r}; "
            "e.g. store=RedisState('redis://127.0.0.1:6379/0')",
            field="store",
        )
    if not math.isclose(store.window, window):
        raise ValidationError(
            f"store was built for a window of {store.window} s, not this budget's {window} s; build the "
            "store with the budget's window, or pass store='memory' or a RedisState",
            field="store",
        )
    return store
