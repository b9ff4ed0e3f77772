"""The RetryBudget's Redis store: the same 10 buckets as in memory, in one hash, one Lua script per change.

The hash ``<namespace>:budget:<name>`` holds ``e<i>`` (the bucket's epoch: time // step), ``c<i>``
(calls) and ``r<i>`` (retries) for the 10 slots ``i = epoch % 10``: 30 fields at most, whatever the
traffic. Recording a call is one ``HINCRBY`` (or a slot reset when the bucket is new); spending sums the
buckets of the window, decides and counts the retry in the same script, so two processes can never both
take the last retry. Every write renews a TTL of two windows plus a second.
"""

from __future__ import annotations

import math
from typing import Final, cast

from buttress.resilience._budget import BUCKETS, Ring
from buttress.resilience._redis_state import UNAVAILABLE, RedisState, Script

__all__ = ["RECORD", "SNAPSHOT", "SPEND", "RedisBudget"]

# The scripts are src/buttress/_redis/lua/budget_*.lua; they share lua/include/budget_bucket.lua (the
# slot of ``now``) and budget_sum.lua (the window's totals).

RECORD: Final = Script.file("budget_record")
"""Count one call in the current bucket. ARGV: now, step (µs), buckets, ttl (ms)."""

SPEND: Final = Script.file("budget_spend")
"""Take one retry if ``retries + 1 <= ratio * calls + min_retries``. ARGV: now, step, buckets, ttl,
ratio, min_retries. Returns {allowed, calls, retries}."""

SNAPSHOT: Final = Script.file("budget_snapshot")
"""Read (calls, retries) in the window; writes nothing."""


class RedisBudget:
    """A budget's state in Redis, with the memory ``twin`` used while Redis is down under policy local."""

    __slots__ = ("_args", "_key", "_twin", "state")

    def __init__(self, state: RedisState, name: str, window: float, *, twin: Ring) -> None:
        self.state = state
        self._key = [state.key("budget", name)]
        ttl_ms = math.ceil(window * 2000) + 1000
        self._args = (twin.step_us, BUCKETS, ttl_ms)
        self._twin = twin

    def _argv(self, *extra: float | int) -> list[str | int | float]:
        return [self.state.now_arg(), *self._args, *(repr(x) for x in extra)]

    def record(self) -> None:
        if self.state.run(RECORD, self._key, self._argv()) is UNAVAILABLE and self.state.policy == "local":
            self._twin.record()

    async def arecord(self) -> None:
        result = await self.state.arun(RECORD, self._key, self._argv())
        if result is UNAVAILABLE and self.state.policy == "local":
            self._twin.record()

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
                return self._twin.try_spend(ratio, min_retries)
            return policy == "open", 0, 0
        allowed, calls, retries = cast("list[int]", result)
        return bool(allowed), int(calls), int(retries)

    def counts(self) -> tuple[int, int] | None:
        """(calls, retries) in the window, or None while Redis is unreachable."""
        return self._counts(self.state.run(SNAPSHOT, self._key, self._argv()))

    async def acounts(self) -> tuple[int, int] | None:
        return self._counts(await self.state.arun(SNAPSHOT, self._key, self._argv()))

    @staticmethod
    def _counts(result: object) -> tuple[int, int] | None:
        if result is UNAVAILABLE:
            return None
        calls, retries = cast("list[int]", result)
        return int(calls), int(retries)
