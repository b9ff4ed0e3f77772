"""The RetryBudget's Redis store: the same 10 buckets as in memory, in one hash, one Lua script per change.

The hash ``<prefix>:{budget:<name>}`` (hash-tagged like every primitive's state) holds ``e<i>`` (the
bucket's epoch: time // step), ``c<i>`` (calls) and ``r<i>`` (retries) for the 10 slots
``i = epoch % 10``: 30 fields at most, whatever the traffic. Recording a call is one ``HINCRBY`` (or a
slot reset when the bucket is new); spending sums the buckets of the window, decides and counts the retry
in the same script, so two processes can never both take the last retry. Every write renews a TTL of
two windows plus a second.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, cast

from buttress.resilience._budget_memory import BUCKETS, MemoryBudgetStore
from buttress.resilience._redis_state import UNAVAILABLE, RedisState, Script
from buttress.resilience._stores import StoreInfo

if TYPE_CHECKING:
    from buttress.health_types import CheckResult

__all__ = ["RECORD", "SNAPSHOT", "SPEND", "RedisBudgetStore"]

# The scripts are src/buttress/_redis/lua/budget_*.lua; they share lua/include/budget_bucket.lua (the
# slot of ``now``) and budget_sum.lua (the window's totals).

RECORD: Final = Script.file("budget_record")
"""Count one call in the current bucket. ARGV: now, step (µs), buckets, ttl (ms)."""

SPEND: Final = Script.file("budget_spend")
"""Take one retry if ``retries + 1 <= ratio * calls + min_retries``. ARGV: now, step, buckets, ttl,
ratio, min_retries. Returns {allowed, calls, retries}."""

SNAPSHOT: Final = Script.file("budget_snapshot")
"""Read (calls, retries) in the window; writes nothing."""


class RedisBudgetStore:
    """A budget's state in Redis, shared by every process that uses the same key prefix and ``name``.

    A :class:`~buttress.resilience.BudgetStore`; the memory ``fallback`` (built when not given) is used while
    Redis is down under policy local.
    """

    __slots__ = ("_args", "_fallback", "_key", "name", "state", "window")

    kind: Final = "redis"
    shared: Final = True

    def __init__(
        self, state: RedisState, name: str, window: float, *, fallback: MemoryBudgetStore | None = None
    ) -> None:
        if fallback is None:
            fallback = MemoryBudgetStore(window, state.clock.monotonic)
        self.state = state
        self.name = name
        self.window = window
        self._key = [state.key("budget", name)]
        ttl_ms = math.ceil(window * 2000) + 1000
        self._args = (fallback.step_us, BUCKETS, ttl_ms)
        self._fallback = fallback

    def _argv(self, *extra: float | int) -> list[str | int | float]:
        return [self.state.now_arg(), *self._args, *(repr(x) for x in extra)]

    def record(self) -> None:
        if self.state.run(RECORD, self._key, self._argv()) is UNAVAILABLE and self.state.policy == "local":
            self._fallback.record()

    async def arecord(self) -> None:
        result = await self.state.arun(RECORD, self._key, self._argv())
        if result is UNAVAILABLE and self.state.policy == "local":
            self._fallback.record()

    def try_spend(self, ratio: float, min_retries: int) -> tuple[bool, int, int]:
        result = self.state.run(SPEND, self._key, self._argv(ratio, min_retries))
        return self._decide(result, ratio, min_retries)

    async def atry_spend(self, ratio: float, min_retries: int) -> tuple[bool, int, int]:
        result = await self.state.arun(SPEND, self._key, self._argv(ratio, min_retries))
        return self._decide(result, ratio, min_retries)

    def _decide(self, result: object, ratio: float, min_retries: int) -> tuple[bool, int, int]:
        if result is UNAVAILABLE:
            policy = self.state.policy
            if policy == "local":
                return self._fallback.try_spend(ratio, min_retries)
            return policy == "open", 0, 0
        allowed, calls, retries = cast("list[int]", result)
        return bool(allowed), int(calls), int(retries)

    def counts(self) -> tuple[int, int, bool]:
        """(calls, retries, degraded) in the window; while Redis is unreachable, the fallback's and True."""
        return self._counts(self.state.run(SNAPSHOT, self._key, self._argv()))

    async def acounts(self) -> tuple[int, int, bool]:
        return self._counts(await self.state.arun(SNAPSHOT, self._key, self._argv()))

    def _counts(self, result: object) -> tuple[int, int, bool]:
        if result is UNAVAILABLE:
            calls, retries, _ = self._fallback.counts()
            return calls, retries, True
        calls, retries = cast("list[int]", result)
        return int(calls), int(retries), False

    def info(self) -> StoreInfo:
        return StoreInfo("redis", shared=True, available=self.state.available, detail=f"key {self._key[0]}")

    def check(self) -> CheckResult:
        return self.state.check()
