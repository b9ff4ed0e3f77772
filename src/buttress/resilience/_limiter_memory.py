"""The rate limiter's memory store: GCRA buckets (key -> TAT) in this process, the reference model.

See :mod:`buttress.resilience._limiter` for the algorithm; ``_limiter_redis.py`` mirrors this in Lua.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable, Sequence
from typing import Final

from buttress.health_types import CheckResult
from buttress.resilience._decorate import check_name
from buttress.resilience._stores import StoreInfo
from buttress.resilience._tokens import round_tokens

__all__ = ["SLACK", "MemoryLimiterStore"]

SLACK: Final = 1e-6
"""A wait under one microsecond counts as none: below the clocks' resolution; absorbs float rounding."""
_SLACK: Final = SLACK


class MemoryLimiterStore:
    """GCRA buckets in this process: key -> TAT under one short lock, at most ``max_keys`` keys.

    When a new key finds the table full, buckets that are full again (TAT <= now) are dropped first, which
    loses nothing; if that frees less than a tenth of the table, the buckets closest to full (oldest TAT)
    go next, down to 90 % of ``max_keys``, so the sweep runs rarely. A dropped bucket starts full again.

    The reference :class:`~buttress.resilience.LimiterStore`: sync, no I/O, time from ``now`` (the clock's
    monotonic seconds). Its async twins call the sync methods.
    """

    __slots__ = ("_burst", "_interval", "_lock", "_max_keys", "_now", "_span", "_tats")

    kind: Final = "memory"
    shared: Final = False

    def __init__(self, *, interval: float, burst: int, max_keys: int, now: Callable[[], float]) -> None:
        self._interval = interval
        self._burst = burst
        self._span = burst * interval
        self._max_keys = max_keys
        self._now = now
        self._lock = threading.Lock()
        self._tats: dict[str, float] = {}

    def take(self, key: str, cost: int, max_wait: float) -> tuple[float, float]:
        """``(wait, tat)``: admitted after ``wait >= 0`` s (slot reserved), else ``retry_after = -wait``."""
        now = self._now()
        tats = self._tats
        lock = self._lock
        lock.acquire()  # try/finally costs less than a with-block, and releases just the same
        try:
            tat = tats.get(key)
            if tat is None:
                tat = now
                check_name(key, "key")
                if len(tats) >= self._max_keys:
                    self._evict(now)
            elif tat < now:
                tat = now
            new = tat + cost * self._interval
            wait = new - self._span - now
            if wait <= _SLACK:
                tats[key] = new
                return 0.0, new
            if wait <= max_wait + _SLACK:
                tats[key] = new
                return wait, new
        finally:
            lock.release()
        return -wait, math.nan

    def _evict(self, now: float) -> None:
        tats = self._tats
        before = len(tats)
        for key in [key for key, tat in tats.items() if tat <= now]:
            del tats[key]
        keep = self._max_keys - max(1, self._max_keys // 10)
        if before - len(tats) < before - keep:
            for key in heapq.nsmallest(len(tats) - keep, tats, key=tats.__getitem__):
                del tats[key]

    def refund(self, key: str, cost: int, tat: float) -> None:
        """Give back a reservation that will not be used, if no one reserved after it."""
        now = self._now()
        with self._lock:
            current = self._tats.get(key)
            if current is None or abs(current - tat) >= self._interval / 2:
                return
            self._tats[key] = max(current - cost * self._interval, now)

    def available(self, keys: Sequence[str]) -> list[float]:
        """Tokens available now in each of ``keys`` (an unknown key is a full bucket)."""
        now = self._now()
        burst, interval = self._burst, self._interval
        with self._lock:
            tats = [self._tats.get(key, now) for key in keys]
        return [round_tokens(burst - max(tat - now, 0.0) / interval) for tat in tats]

    def reset(self, key: str) -> None:
        """Forget ``key``'s bucket: it is full again."""
        with self._lock:
            self._tats.pop(key, None)

    def keys(self) -> list[str]:
        """Keys with a bucket in this process."""
        with self._lock:
            return list(self._tats)

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return self._interval

    @property
    def burst(self) -> int:
        """Tokens a full bucket holds."""
        return self._burst

    # -- async twins (no I/O: the sync methods) and reporting -----------------------------------------

    async def atake(self, key: str, cost: int, max_wait: float) -> tuple[float, float]:
        return self.take(key, cost, max_wait)

    async def arefund(self, key: str, cost: int, tat: float) -> None:
        self.refund(key, cost, tat)

    async def aavailable(self, keys: Sequence[str]) -> list[float]:
        return self.available(keys)

    async def areset(self, key: str) -> None:
        self.reset(key)

    def info(self) -> StoreInfo:
        return StoreInfo("memory", shared=False, available=True, detail="this process only")

    def check(self) -> CheckResult:
        count = len(self._tats)
        return CheckResult(
            "pass", f"limiter buckets in memory: {count} of {self._max_keys} keys", count, "keys"
        )
