"""The circuit breaker's state in Redis, shared by every process; each process serves its own copy.

Keys (all with a TTL refreshed on write, longer than any period they record; one hash tag, so a Redis
Cluster keeps them in one slot and every script is passed all three):

- ``<prefix>:{breaker:<name>}`` (hash): ``s`` = epoch * 8 + state code, ``ou`` open-until and ``od`` current
  open duration (integer microseconds), ``cf`` consecutive failures, ``hs`` probe successes, ``ln`` the
  lease counter. A missing hash is CLOSED at epoch 0.
- ``…:w`` (hash): the window. Count window: ``n`` calls ever, ``f``/``s`` failures and slow calls in the
  ring, ``r<slot>`` outcome codes. Time window: ``h`` head tick, ``c``/``f``/``s`` totals, ``c<slot>``,
  ``f<slot>``, ``s<slot>`` per bucket.
- ``…:l`` (sorted set): probe lease ids scored by expiry.

The scripts mirror :class:`~buttress.resilience._breaker_state.MemoryBreakerStore` step by step; the
conformance suite and the lockstep test run both. A script that makes a transition returns it (only the
process that caused it publishes the event) and PUBLISHes ``epoch * 8 + state`` on the channel named
like the state key.

The CLOSED success path makes no round trip. Each process keeps a copy of the state (``fast``: the
CLOSED permit, NOOP when DISABLED, None otherwise), updated by every script reply and by the transitions
pushed to it (:mod:`~buttress.resilience._breaker_feed`), and trusted for at most
``RedisState.sync_interval`` seconds: then the next call runs the acquire script, which re-reads the
state. Plain successes are counted locally and written in a batch by the next script this process runs
(at the latest on that re-read, or sooner past :data:`BATCH_MAX`), applied before its own outcome;
failures, slow calls and probes are written at once, one script each.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from buttress._tally import count_value
from buttress.resilience._breaker_state import (
    _NEVER,
    NOOP_PERMIT,
    STATE_CODES,
    SUCCESS,
    Admission,
    BreakerConfig,
    BreakerState,
    MemoryBreakerStore,
    Permit,
    StoreView,
    Transition,
)
from buttress.resilience._redis_state import UNAVAILABLE, Script
from buttress.resilience._stores import StoreInfo

if TYPE_CHECKING:
    from buttress.health_types import CheckResult
    from buttress.resilience._redis_state import RedisState

__all__ = ["BATCH_MAX", "UNREACHABLE_RETRY_AFTER", "RedisBreakerStore"]

UNREACHABLE_RETRY_AFTER: Final = 1.0
"""``retry_after`` of a call refused because Redis is unreachable under the ``closed`` policy."""

BATCH_MAX: Final = 10_000
"""Successes a process holds before its next call writes them (and re-reads the state) at once."""

# The scripts are src/buttress/_redis/lua/breaker_*.lua; they share the header (keys, the parsed config,
# the state and the transition helpers) and the window fragment (with the batch flush) in lua/include/.
# Every script but release takes the caller's batch of successes as one ARGV string.

# KEYS: hash, window, leases. ARGV: now, config, batch. CLOSED -> epoch, DISABLED -> -1 - epoch, a probe
# permit -> {0, epoch, lease, moved}, a refusal -> {state, retry_after_us, moved, epoch * 8 + state}.
_ACQUIRE = Script.file("breaker_acquire")

# KEYS: hash, window, leases. ARGV: now, config, epoch, lease ('' for a CLOSED permit), outcome code,
# batch. Returns {epoch * 8 + state} or that followed by a transition.
_RECORD = Script.file("breaker_record")

# KEYS: hash, leases. ARGV: now, config, epoch, lease.
_RELEASE = Script.file("breaker_release")

# KEYS: hash, window, leases. ARGV: now, config, target state code (0 reset, 3 isolate, 4 disable),
# batch. Returns {epoch * 8 + state} or that followed by a transition.
_CONTROL = Script.file("breaker_control")

# KEYS: hash, window, leases. ARGV: now, config, batch. Returns {state, calls, failures, slow,
# retry_after_us or -1, open_duration_us, epoch * 8 + state}.
_SNAPSHOT = Script.file("breaker_snapshot")

_WHAT = {b"opened": "opened", b"closed": "closed", b"half_opened": "half_opened", b"reset": "reset"}
_WHAT.update({b"forced_open": "forced_open", b"disabled": "disabled"})


def _us(value: float) -> int:
    return round(value * 1_000_000)


def _config_arg(config: BreakerConfig) -> str:
    """The config as the one ARGV string the scripts parse (0 turns a rule off)."""
    values: Sequence[object] = (
        config.consecutive_failures or 0,
        repr(config.failure_rate or 0.0),
        repr(config.slow_call_rate or 0.0),
        0 if config.window_type == "count" else 1,
        config.buckets,
        config.bucket_us,
        config.minimum_calls,
        _us(config.open_duration),
        _us(config.open_duration_max),
        config.half_open_probes,
        _us(config.probe_lease),
        round(config.ttl * 1000),
    )
    return " ".join(str(v) for v in values)


def _transition(reply: Sequence[Any]) -> Transition | None:
    """A script's transition reply ``{what, from, to, failure_rate, retry_after_us}`` (empty: none)."""
    if not reply:
        return None
    what, source, target, failure_rate, retry_us = reply
    return Transition(
        _WHAT[what],
        STATE_CODES[source],
        STATE_CODES[target],
        float(failure_rate) if failure_rate else None,
        retry_us / 1_000_000 if retry_us >= 0 else None,
    )


class RedisBreakerStore:
    """One breaker's state in Redis, shared by every process that uses the same key prefix and ``name``.

    A :class:`~buttress.resilience.BreakerStore`; ``fallback`` (built from ``config`` when not given) is the
    in-memory state used under the ``local`` outage policy; ``now`` is the clock of the copy's freshness
    (the breaker's monotonic clock; the state's clock by default).

    Like the memory store, it exposes what a breaker reads to admit and count a call without a method
    call: ``fast`` (the permit to hand out while ``now() < due``), ``closed`` (the CLOSED permit of the
    copy's period) and ``successes`` (the batch counter of a count window; None for a time window).
    """

    kind = "redis"
    shared = True

    def __init__(
        self,
        state: RedisState,
        name: str,
        config: BreakerConfig,
        fallback: MemoryBreakerStore | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.redis = state
        self.name = name
        self.config = config
        self._now = now if now is not None else state.clock.monotonic
        self.fallback = fallback if fallback is not None else MemoryBreakerStore(config, self._now)
        key = self.key = state.key("breaker", name)
        self._keys = (key, key + ":w", key + ":l")
        self._keys2 = (key, key + ":l")
        self._cfg = _config_arg(config)
        self._interval = state.sync_interval
        self._bucket_us = config.bucket_us
        self._disabled_admission = Admission(NOOP_PERMIT, BreakerState.DISABLED, 0.0, None)
        self._lock = threading.Lock()
        # the copy: unknown until the first script reply
        self.epoch = -1
        self.last_state = BreakerState.CLOSED
        self.closed: Permit = _NEVER
        self.fast: Permit | None = None
        self.due = -math.inf
        self._version = 0  # pushes seen: a reply that a push overtook must not undo it
        self.successes: itertools.count[int] | None = (
            itertools.count() if config.window_type == "count" else None
        )
        self._ticks: dict[int, list[float]] = {}  # time window: local bucket -> [first success, count]
        self._feed = state.breaker_feed()
        self._feed.add(name, self)

    @property
    def known_state(self) -> BreakerState:
        """The state of this process's copy (no round trip; for the scrape-time gauge)."""
        if not self.redis.available and self.redis.policy == "local":
            return self.fallback.state
        return self.last_state

    # -- the copy ------------------------------------------------------------------------------------

    def pushed(self, se: int) -> None:
        """A transition published by a script (any process's, this one's too): newer epochs win."""
        self._version += 1
        epoch, code = divmod(se, 8)
        if epoch > self.epoch:
            self._set(epoch, code)

    def stale(self) -> None:
        """Pushes may have been lost: the next call re-reads the state."""
        self.due = -math.inf

    def _learn(self, se: int, version: int) -> None:
        """What a script reply says the state is now, unless a push overtook the reply on its way."""
        epoch, code = divmod(se, 8)
        if version != self._version and epoch < self.epoch:
            return
        self._set(epoch, code)
        self.due = self._now() + self._interval

    def _set(self, epoch: int, code: int) -> None:
        if code == 0:
            closed = self.closed
            if closed.epoch != epoch:  # a new CLOSED period: earlier successes belong to the old one
                self._take_batch()
                closed = self.closed = Permit(epoch, None, self)
            self.fast = closed
        else:
            self.fast = NOOP_PERMIT if code == 4 else None
            self.closed = _NEVER
        self.epoch = epoch
        self.last_state = STATE_CODES[code]

    def _lost(self) -> None:
        """Redis is unreachable: no copy to trust; each call asks (and meets the outage policy)."""
        self.fast = None
        self.closed = _NEVER
        self.due = -math.inf
        self._take_batch()

    def _add_success(self) -> None:
        counter = self.successes
        if counter is not None:
            if next(counter) >= BATCH_MAX:
                self.due = -math.inf
            return
        now = self._now()
        tick = round(now * 1_000_000) // self._bucket_us
        with self._lock:
            entry = self._ticks.get(tick)
            if entry is None:
                self._ticks[tick] = [now, 1]
            else:
                entry[1] += 1

    def _take_batch(self) -> str:
        """The successes counted since the last script, as its batch argument (and forget them)."""
        counter = self.successes
        if counter is not None:
            self.successes = itertools.count()
            count = count_value(counter)
            return f"{self.closed.epoch} 0 {count}" if count else ""
        with self._lock:
            ticks, self._ticks = self._ticks, {}
        if not ticks:
            return ""
        now = self._now()
        pairs = " ".join(f"{round((now - first) * 1_000_000)} {count:.0f}" for first, count in ticks.values())
        return f"{self.closed.epoch} {pairs}"

    # -- replies -------------------------------------------------------------------------------------

    def _admission(self, reply: Any, version: int) -> Admission:
        if type(reply) is int:
            if reply < 0:
                self._learn((-1 - reply) * 8 + 4, version)
                return self._disabled_admission
            self._learn(reply * 8, version)
            closed = self.closed
            permit = closed if closed.epoch == reply else Permit(reply, None, self)
            return Admission(permit, BreakerState.CLOSED, 0.0, None)
        if reply is UNAVAILABLE:
            self._lost()
            return self._unavailable()
        if reply[0] == 0:
            _, epoch, lease, moved = reply
            self._learn(epoch * 8 + 2, version)
            transition = (
                Transition("half_opened", BreakerState.OPEN, BreakerState.HALF_OPEN, None, None)
                if moved
                else None
            )
            return Admission(Permit(epoch, lease, self), BreakerState.HALF_OPEN, 0.0, transition)
        code, retry_us, moved, se = reply
        self._learn(se, version)
        state, retry_after = STATE_CODES[code], retry_us / 1_000_000
        if moved:  # an expired probe lease reopened it: a failed probe
            reopened = Transition("opened", BreakerState.HALF_OPEN, state, None, retry_after)
            return Admission(None, state, retry_after, reopened)
        return Admission(None, state, retry_after, None)

    def _unavailable(self) -> Admission:
        policy = self.redis.policy
        if policy == "local":
            return self.fallback.acquire()
        if policy == "open":
            return self._disabled_admission
        return Admission(
            None,
            BreakerState.FORCED_OPEN,
            UNREACHABLE_RETRY_AFTER,
            None,
            "its Redis store is unreachable and the outage policy is 'closed'",
        )

    def _view(self, reply: Any, version: int) -> StoreView:
        if reply is UNAVAILABLE:
            self._lost()
            policy = self.redis.policy
            if policy == "local":
                return self.fallback.view()
            state = BreakerState.DISABLED if policy == "open" else BreakerState.FORCED_OPEN
            return StoreView(state, 0, 0, 0, None, self.config.open_duration)
        code, calls, failures, slow, retry_us, open_us, se = reply
        self._learn(se, version)
        retry_after = retry_us / 1_000_000 if retry_us >= 0 else None
        return StoreView(STATE_CODES[code], calls, failures, slow, retry_after, open_us / 1_000_000)

    def _changed(self, reply: Any, version: int) -> Transition | None:
        """A record or control reply: ``{epoch * 8 + state}``, then the transition if it made one."""
        if reply is UNAVAILABLE:
            self._lost()
            return None
        self._learn(reply[0], version)
        return _transition(reply[1:])

    # -- arguments -----------------------------------------------------------------------------------

    def _acquire_args(self) -> tuple[int, tuple[str, ...]]:
        self._feed.start()  # the slow path: make sure this process listens (a forked child too)
        version = self._version
        return version, (self.redis.now_arg(), self._cfg, self._take_batch())

    def _record_args(self, permit: Permit, code: int) -> tuple[int, tuple[str | int, ...]]:
        version = self._version
        args = (self.redis.now_arg(), self._cfg, permit.epoch, permit.lease or "", code, self._take_batch())
        return version, args

    def _control_args(self, target: BreakerState) -> tuple[int, tuple[str | int, ...]]:
        self.fallback.control(target)
        version = self._version
        return version, (self.redis.now_arg(), self._cfg, STATE_CODES.index(target), self._take_batch())

    def _view_args(self) -> tuple[int, tuple[str, ...]]:
        version = self._version
        return version, (self.redis.now_arg(), self._cfg, self._take_batch())

    def _local(self, permit: Permit, code: int) -> bool:
        """True when ``record`` is done without Redis: a plain CLOSED success, or another store's permit."""
        if permit is self.closed and code == SUCCESS:
            self._add_success()
            return True
        return permit.owner is not self

    def _elsewhere(self, permit: Permit, code: int) -> Transition | None:
        if permit.owner is self.fallback:
            return self.fallback.record(permit, code)
        return None

    # -- sync ----------------------------------------------------------------------------------------

    def acquire(self) -> Admission:
        fast = self.fast
        if fast is not None and self._now() < self.due:
            return Admission(
                fast, BreakerState.DISABLED if fast is NOOP_PERMIT else BreakerState.CLOSED, 0.0, None
            )
        version, args = self._acquire_args()
        return self._admission(self.redis.run(_ACQUIRE, self._keys, args), version)

    def record(self, permit: Permit, code: int) -> Transition | None:
        if self._local(permit, code):
            return self._elsewhere(permit, code)
        version, args = self._record_args(permit, code)
        return self._changed(self.redis.run(_RECORD, self._keys, args), version)

    def release(self, permit: Permit) -> None:
        if permit.lease is None:
            return
        if permit.owner is not self:
            self.fallback.release(permit)
            return
        state = self.redis
        state.run(_RELEASE, self._keys2, (state.now_arg(), self._cfg, permit.epoch, permit.lease))

    def control(self, target: BreakerState) -> tuple[bool, Transition | None]:
        """Apply ``target`` in Redis and to the fallback: (reached Redis, the transition Redis made)."""
        version, args = self._control_args(target)
        reply = self.redis.run(_CONTROL, self._keys, args)
        return reply is not UNAVAILABLE, self._changed(reply, version)

    def view(self) -> StoreView:
        version, args = self._view_args()
        return self._view(self.redis.run(_SNAPSHOT, self._keys, args), version)

    # -- async ---------------------------------------------------------------------------------------

    async def aacquire(self) -> Admission:
        fast = self.fast
        if fast is not None and self._now() < self.due:
            return Admission(
                fast, BreakerState.DISABLED if fast is NOOP_PERMIT else BreakerState.CLOSED, 0.0, None
            )
        version, args = self._acquire_args()
        return self._admission(await self.redis.arun(_ACQUIRE, self._keys, args), version)

    async def arecord(self, permit: Permit, code: int) -> Transition | None:
        if self._local(permit, code):
            return self._elsewhere(permit, code)
        version, args = self._record_args(permit, code)
        return self._changed(await self.redis.arun(_RECORD, self._keys, args), version)

    async def arelease(self, permit: Permit) -> None:
        if permit.lease is None:
            return
        if permit.owner is not self:
            self.fallback.release(permit)
            return
        state = self.redis
        await state.arun(_RELEASE, self._keys2, (state.now_arg(), self._cfg, permit.epoch, permit.lease))

    async def acontrol(self, target: BreakerState) -> tuple[bool, Transition | None]:
        version, args = self._control_args(target)
        reply = await self.redis.arun(_CONTROL, self._keys, args)
        return reply is not UNAVAILABLE, self._changed(reply, version)

    async def aview(self) -> StoreView:
        version, args = self._view_args()
        return self._view(await self.redis.arun(_SNAPSHOT, self._keys, args), version)

    # -- reporting -----------------------------------------------------------------------------------

    def info(self) -> StoreInfo:
        return StoreInfo("redis", shared=True, available=self.redis.available, detail=f"key {self.key}")

    def check(self) -> CheckResult:
        return self.redis.check()
