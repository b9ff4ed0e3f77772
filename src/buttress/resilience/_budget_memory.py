"""The retry budget's memory store: 10 time buckets of (calls, retries), the reference model.

See :mod:`buttress.resilience._budget` for the rule; ``_budget_redis.py`` mirrors this in Lua.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from typing import Final

from buttress._tally import count_value
from buttress.health_types import CheckResult
from buttress.resilience._stores import StoreInfo

__all__ = ["BUCKETS", "MemoryBudgetStore", "allows"]

BUCKETS: Final = 10
_NO_EPOCH: Final = -(2**62)


def allows(retries: int, calls: int, ratio: float, min_retries: int) -> bool:
    """The rule, also written in Lua: one more retry fits in ``ratio * calls + min_retries``."""
    return retries + 1 <= ratio * calls + min_retries


class MemoryBudgetStore:
    """The memory store: 10 buckets of (calls, retries), each stamped with its epoch (time // step).

    The reference :class:`~buttress.resilience.BudgetStore`: sync, no I/O, time from ``now`` (the clock's
    monotonic seconds). Its async twins call the sync methods.
    """

    __slots__ = (
        "_add",
        "_calls",
        "_edge",
        "_epoch",
        "_epochs",
        "_lock",
        "_now",
        "_retries",
        "step_us",
        "window",
    )

    kind: Final = "memory"
    shared: Final = False

    def __init__(self, window: float, now: Callable[[], float]) -> None:
        self.window = window
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

    def counts(self) -> tuple[int, int, bool]:
        """(calls, retries, degraded) in the window now; never degraded."""
        with self._lock:
            calls, retries = self._counts(self._rotate())
        return calls, retries, False

    # -- async twins (no I/O: the sync methods) and reporting -----------------------------------------

    async def arecord(self) -> None:
        self.record()

    async def atry_spend(self, ratio: float, min_retries: int) -> tuple[bool, int, int]:
        return self.try_spend(ratio, min_retries)

    async def acounts(self) -> tuple[int, int, bool]:
        return self.counts()

    def info(self) -> StoreInfo:
        return StoreInfo("memory", shared=False, available=True, detail="this process only")

    def check(self) -> CheckResult:
        calls, retries, _ = self.counts()
        return CheckResult("pass", f"retry budget in memory: {calls} calls, {retries} retries in the window")
