"""The rate limiter's Redis store: GCRA in one Lua script per decision, time from Redis ``TIME``.

Each bucket is one string key holding its theoretical arrival time (TAT) in microseconds, with a TTL that
ends when the bucket would be full again (a missing key *is* a full bucket, so expiry loses nothing).
Every process asks Redis, so N processes share one limit exactly; waiters reserve their slot in the same
script that decides, which keeps them fair and spaced across processes without polling.

Keys are ``<prefix>:limiter:<name>:<key>``, without a hash tag: every script but the peek touches one
bucket, so a Redis Cluster spreads one limiter's buckets (a per-user limit, say) over all its primaries;
on a cluster a peek at several buckets makes one call per slot (:attr:`RedisLimiterStore.by_slot`).

While Redis is unreachable the limiter follows :attr:`RedisState.policy`: ``local`` decides with an
in-memory fallback (each process then enforces the full limit on its own), ``open`` admits every call and
``closed`` rejects every call with ``retry_after`` of one interval.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from buttress._redis import topology
from buttress.resilience._decorate import check_name
from buttress.resilience._limiter_memory import MemoryLimiterStore
from buttress.resilience._redis_state import UNAVAILABLE, RedisState, Script
from buttress.resilience._stores import StoreInfo
from buttress.resilience._tokens import round_tokens

if TYPE_CHECKING:
    from buttress.health_types import CheckResult

__all__ = ["ACQUIRE", "PEEK", "REFUND", "RESET", "RedisLimiterStore"]

ACQUIRE: Final = Script.file("limiter_acquire")
"""ARGV: now, interval µs, burst, cost, max wait µs. Admits (reserving the slot) when the wait is at most
the max wait: at once, the new TAT as an integer; after a wait, ``b"<wait µs> <new TAT>"``. Else
``b"-<wait µs>"`` and nothing changes. The common answer is one integer, the cheapest reply to send and
parse (an array of three strings cost about 10 µs more per decision in redis-py). A wait under 1 µs
(below the clock's resolution; absorbs float rounding) counts as none. Keys live one second longer than
the time until they are full again, so a key never expires just before a decision that still needs it."""

PEEK: Final = Script.file("limiter_peek")
"""ARGV: now, interval µs, burst. The tokens available now in each bucket of ``KEYS``; changes nothing."""

REFUND: Final = Script.file("limiter_refund")
"""ARGV: now, interval µs, cost, the TAT the reservation set. Gives the reservation back only if no one
reserved after it (the TAT is still the one it set), so a refund never moves a later waiter's slot."""

RESET: Final = Script.file("limiter_reset")
"""Forget a bucket (it is full again)."""


class RedisLimiterStore:
    """GCRA buckets of one limiter in Redis, with the same methods and results as the memory store.

    A :class:`~buttress.resilience.LimiterStore`, shared by every process that uses the same key prefix and
    ``name``; ``fallback`` (built when not given) decides under the ``local`` outage policy.

    ``take`` returns ``(wait, tat)``: ``wait >= 0`` admitted (the slot is reserved, sleep ``wait``), else
    rejected with ``retry_after = -wait``. ``tat`` identifies the reservation for :meth:`refund` (NaN
    when nothing was reserved; only a wait is ever refunded, and a NaN TAT never matches).
    """

    __slots__ = (
        "_arun",
        "_burst",
        "_constants",
        "_interval",
        "_interval_us",
        "_lock",
        "_max_keys",
        "_max_waits",
        "_prefix",
        "_run",
        "_seen",
        "_server_time",
        "by_slot",
        "fallback",
        "name",
        "state",
    )

    kind: Final = "redis"
    shared: Final = True

    def __init__(
        self,
        state: RedisState,
        name: str,
        *,
        interval: float,
        period: float,
        limit: int,
        burst: int,
        max_keys: int,
        fallback: MemoryLimiterStore | None = None,
    ) -> None:
        self.state = state
        self.name = name
        self.fallback = (
            fallback
            if fallback is not None
            else MemoryLimiterStore(
                interval=interval, burst=burst, max_keys=max_keys, now=state.clock.monotonic
            )
        )
        # no hash tag: each bucket is one key, so a cluster spreads one limiter's buckets over its slots
        self._prefix = f"{state.prefix}:limiter:{name}:"
        self.by_slot = topology(state.url) == "cluster"
        """True on a cluster: a peek at several buckets reads one slot at a time."""
        self._interval = interval
        self._interval_us = repr(period * 1_000_000 / limit)
        self._burst = burst
        self._max_keys = max_keys
        self._seen: dict[str, None] = {}
        self._lock = threading.Lock()
        # the hot path: the connection's own run (one frame less) and arguments encoded once
        self._run = state.connection.run
        self._arun = state.connection.arun
        self._server_time = state.connection.server_time
        self._constants = (self._interval_us.encode(), str(burst).encode())
        self._max_waits: dict[float, bytes] = {}

    # -- helpers ----------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        if key not in self._seen:
            check_name(key, "key")
            with self._lock:
                seen = self._seen
                if len(seen) >= self._max_keys:
                    del seen[next(iter(seen))]
                seen[key] = None
        return self._prefix + key

    def _take_args(self, cost: int, max_wait: float) -> tuple[str | bytes, bytes, bytes, int, bytes]:
        encoded = self._max_waits.get(max_wait)
        if encoded is None:
            encoded = repr(max_wait * 1_000_000).encode()
            if len(self._max_waits) < 16:  # a limiter's max_wait, 0 for try_acquire, a few timeouts
                self._max_waits[max_wait] = encoded
        now = b"" if self._server_time else self.state.now_arg()
        return (now, *self._constants, cost, encoded)

    def _decided(self, reply: Any, key: str, cost: int, max_wait: float) -> tuple[float, float]:
        """A reply other than an immediate admission: a wait, a refusal, or Redis unreachable."""
        if reply is UNAVAILABLE:
            policy = self.state.policy
            if policy == "local":
                return self.fallback.take(key, cost, max_wait)
            if policy == "open":
                return 0.0, math.nan
            return -self._interval, math.nan
        wait, _, tat = reply.partition(b" ")
        if tat:  # admitted after a wait
            return float(wait) / 1_000_000, float(tat)
        return float(wait) / 1_000_000, math.nan  # refused: minus the wait

    def _peeked(self, reply: Any, keys: Sequence[str]) -> list[float]:
        if reply is UNAVAILABLE:
            if self.state.policy == "local":
                return self.fallback.available(keys)
            return [float(self._burst)] * len(keys)  # open or closed: no state to show, report it full
        return [round_tokens(float(value)) for value in reply]

    # -- the store ----------------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        """True while Redis is unreachable and the in-memory fallback decides."""
        return not self.state.available and self.state.policy == "local"

    def take(self, key: str, cost: int, max_wait: float) -> tuple[float, float]:
        """Decide (and reserve) ``cost`` tokens of ``key``, waiting at most ``max_wait`` seconds."""
        redis_key = self._prefix + key if key in self._seen else self._key(key)
        reply = self._run(ACQUIRE, (redis_key,), self._take_args(cost, max_wait))
        if type(reply) is int:  # admitted at once (the common answer): the new TAT
            return 0.0, float(reply)
        return self._decided(reply, key, cost, max_wait)

    async def atake(self, key: str, cost: int, max_wait: float) -> tuple[float, float]:
        """:meth:`take` on the running loop's async client."""
        redis_key = self._prefix + key if key in self._seen else self._key(key)
        reply = await self._arun(ACQUIRE, (redis_key,), self._take_args(cost, max_wait))
        if type(reply) is int:
            return 0.0, float(reply)
        return self._decided(reply, key, cost, max_wait)

    def refund(self, key: str, cost: int, tat: float) -> None:
        """Give back a reservation that will not be used, if it is still the last one."""
        args = (self.state.now_arg(), self._interval_us, cost, repr(tat))
        if self.state.run(REFUND, (self._key(key),), args) is UNAVAILABLE:
            self.fallback.refund(key, cost, tat)

    async def arefund(self, key: str, cost: int, tat: float) -> None:
        """:meth:`refund` on the running loop's async client."""
        args = (self.state.now_arg(), self._interval_us, cost, repr(tat))
        if await self.state.arun(REFUND, (self._key(key),), args) is UNAVAILABLE:
            self.fallback.refund(key, cost, tat)

    def _groups(self, keys: Sequence[str]) -> list[list[str]]:
        """``keys`` in the groups one PEEK may read: all at once, or one group per cluster slot."""
        if not self.by_slot:
            return [list(keys)]
        from redis.crc import key_slot  # noqa: PLC0415 - redis-py is imported by the first connection

        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(key_slot((self._prefix + key).encode()), []).append(key)
        return list(groups.values())

    def available(self, keys: Sequence[str]) -> list[float]:
        """Tokens available now in each of ``keys`` (one round trip for all; one per slot on a cluster)."""
        found: dict[str, float] = {}
        for group in self._groups(keys):
            redis_keys = [self._prefix + key for key in group]  # looking is not using: keys() stays as is
            args = (self.state.now_arg(), self._interval_us, self._burst)
            found.update(zip(group, self._peeked(self.state.run(PEEK, redis_keys, args), group), strict=True))
        return [found[key] for key in keys]

    async def aavailable(self, keys: Sequence[str]) -> list[float]:
        """:meth:`available` on the running loop's async client."""
        found: dict[str, float] = {}
        for group in self._groups(keys):
            redis_keys = [self._prefix + key for key in group]  # looking is not using: keys() stays as is
            args = (self.state.now_arg(), self._interval_us, self._burst)
            reply = await self.state.arun(PEEK, redis_keys, args)
            found.update(zip(group, self._peeked(reply, group), strict=True))
        return [found[key] for key in keys]

    def reset(self, key: str) -> None:
        """Forget ``key``'s bucket in Redis and in the fallback."""
        self.state.run(RESET, (self._key(key),), (self.state.now_arg(),))
        self.fallback.reset(key)

    async def areset(self, key: str) -> None:
        """:meth:`reset` on the running loop's async client."""
        await self.state.arun(RESET, (self._key(key),), (self.state.now_arg(),))
        self.fallback.reset(key)

    def keys(self) -> list[str]:
        """Keys this process used, in first-use order (at most ``max_keys``: the earliest are dropped)."""
        return list(self._seen)

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return self._interval

    @property
    def burst(self) -> int:
        """Tokens a full bucket holds."""
        return self._burst

    def info(self) -> StoreInfo:
        return StoreInfo("redis", shared=True, available=self.state.available, detail=f"keys {self._prefix}*")

    def check(self) -> CheckResult:
        return self.state.check()
