"""The circuit breaker's state in Redis, shared by every process: one Lua script per operation.

Keys (all with a TTL refreshed on write, longer than any period they record):

- ``<ns>:breaker:<name>`` (hash): ``s`` = epoch * 8 + state code, ``ou`` open-until and ``od`` current
  open duration (integer microseconds), ``cf`` consecutive failures, ``hs`` probe successes, ``ln`` the
  lease counter, ``c`` the config of the last transition (for acquire). A missing hash is CLOSED at
  epoch 0.
- ``…:w`` (hash): the window. Count window: ``n`` calls ever, ``f``/``s`` failures and slow calls in the
  ring, ``r<slot>`` outcome codes. Time window: ``h`` head tick, ``c``/``f``/``s`` totals, ``c<slot>``,
  ``f<slot>``, ``s<slot>`` per bucket.
- ``…:l`` (sorted set): probe lease ids scored by expiry; acquire purges the expired ones.

The scripts mirror :class:`~buttress.resilience._breaker_state.MemoryBreakerStore` step by step; the
conformance suite runs both. The CLOSED acquire reads one hash field before the time prelude and returns
the epoch as an integer and takes no argument, so the common case costs little more than a ``GET``. The other
scripts take the config as one ARGV string, parsed in Lua. A script that makes a transition returns it,
so only the process that caused it publishes the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from buttress.resilience._breaker_state import (
    NOOP_PERMIT,
    STATE_CODES,
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

__all__ = ["UNREACHABLE_RETRY_AFTER", "RedisBreakerStore"]

UNREACHABLE_RETRY_AFTER: Final = 1.0
"""``retry_after`` of a call refused because Redis is unreachable under the ``closed`` policy."""

# The scripts are src/buttress/_redis/lua/breaker_*.lua; they share the header (keys, the parsed config,
# the state and the transition helpers) and the window fragment in lua/include/.

# KEYS: hash, leases. ARGV: now (left out when Redis TIME is the clock). The CLOSED path returns before
# anything else; the rest reads the config that the last transition stored in the hash (an argument costs
# the common case a few percent). CLOSED -> epoch, DISABLED -> -1, else {0, epoch, lease, moved} for a
# probe permit or {state, retry_after_us} for a refusal.
_ACQUIRE = Script.file("breaker_acquire")

# KEYS: hash, window, leases. ARGV: now, config, epoch, lease ('' for a CLOSED permit), outcome code.
# Returns 0 or a transition.
_RECORD = Script.file("breaker_record")

# KEYS: hash, leases. ARGV: now, config, epoch, lease.
_RELEASE = Script.file("breaker_release")

# ARGV: now, config, target state code (0 reset, 3 isolate, 4 disable). Returns 0 or a transition.
_CONTROL = Script.file("breaker_control")

# ARGV: now, config. Returns {state, calls, failures, slow, retry_after_us or -1, open_duration_us}.
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


def _transition(reply: Any) -> Transition | None:
    """A script's transition reply ``{what, from, to, failure_rate, retry_after_us}`` (0: none)."""
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
    in-memory state used under the ``local`` outage policy.
    """

    kind = "redis"
    shared = True

    def __init__(
        self, state: RedisState, name: str, config: BreakerConfig, fallback: MemoryBreakerStore | None = None
    ) -> None:
        self.redis = state
        self.name = name
        self.config = config
        self.fallback = (
            fallback if fallback is not None else MemoryBreakerStore(config, state.clock.monotonic)
        )
        key = self.key = state.key("breaker", name)
        self._keys = (key, key + ":w", key + ":l")
        self._keys2 = (key, key + ":l")
        self._cfg = _config_arg(config)
        self._closed = (0, Admission(Permit(0, None, self), BreakerState.CLOSED, 0.0, None))
        self._disabled_admission = Admission(NOOP_PERMIT, BreakerState.DISABLED, 0.0, None)
        self.last_state = BreakerState.CLOSED

    @property
    def known_state(self) -> BreakerState:
        """The state the last script reported (no round trip; for the scrape-time gauge)."""
        if not self.redis.available and self.redis.policy == "local":
            return self.fallback.state
        return self.last_state

    # -- replies -----------------------------------------------------------------------------------

    def _admission(self, reply: Any) -> Admission:
        if type(reply) is int:
            epoch, admission = self._closed  # one tuple: threads never see a permit of another epoch
            if reply != epoch:
                if reply < 0:
                    self.last_state = BreakerState.DISABLED
                    return self._disabled_admission
                admission = Admission(Permit(reply, None, self), BreakerState.CLOSED, 0.0, None)
                self._closed = (reply, admission)
            self.last_state = BreakerState.CLOSED
            return admission
        if reply is UNAVAILABLE:
            return self._unavailable()
        if reply[0] == 0:
            _, epoch, lease, moved = reply
            self.last_state = BreakerState.HALF_OPEN
            transition = (
                Transition("half_opened", BreakerState.OPEN, BreakerState.HALF_OPEN, None, None)
                if moved
                else None
            )
            return Admission(Permit(epoch, lease, self), BreakerState.HALF_OPEN, 0.0, transition)
        state = self.last_state = STATE_CODES[reply[0]]
        retry_after = reply[1] / 1_000_000
        if len(reply) > 2:  # an expired probe lease reopened it: a failed probe
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

    def _view(self, reply: Any) -> StoreView:
        if reply is UNAVAILABLE:
            policy = self.redis.policy
            if policy == "local":
                return self.fallback.view()
            state = BreakerState.DISABLED if policy == "open" else BreakerState.FORCED_OPEN
            return StoreView(state, 0, 0, 0, None, self.config.open_duration)
        code, calls, failures, slow, retry_us, open_us = reply
        state = self.last_state = STATE_CODES[code]
        retry_after = retry_us / 1_000_000 if retry_us >= 0 else None
        return StoreView(state, calls, failures, slow, retry_after, open_us / 1_000_000)

    def _recorded(self, reply: Any) -> Transition | None:
        transition = _transition(reply)
        if transition is not None:
            self.last_state = transition.target
        return transition

    # -- sync ----------------------------------------------------------------------------------------

    def acquire(self) -> Admission:
        now = self.redis.now_arg()
        return self._admission(self.redis.run(_ACQUIRE, self._keys2, (now,) if now else ()))

    def record(self, permit: Permit, code: int) -> Transition | None:
        if permit.owner is not self:
            return self.fallback.record(permit, code) if permit.owner is self.fallback else None
        state = self.redis
        args = (state.now_arg(), self._cfg, permit.epoch, permit.lease or "", code)
        return self._recorded(state.run(_RECORD, self._keys, args))

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
        self.fallback.control(target)
        state = self.redis
        args = (state.now_arg(), self._cfg, STATE_CODES.index(target))
        reply = state.run(_CONTROL, self._keys, args)
        if reply is UNAVAILABLE:
            return False, None
        self.last_state = target
        return True, _transition(reply)

    def view(self) -> StoreView:
        state = self.redis
        return self._view(state.run(_SNAPSHOT, self._keys, (state.now_arg(), self._cfg)))

    # -- async ---------------------------------------------------------------------------------------

    async def aacquire(self) -> Admission:
        now = self.redis.now_arg()
        return self._admission(await self.redis.arun(_ACQUIRE, self._keys2, (now,) if now else ()))

    async def arecord(self, permit: Permit, code: int) -> Transition | None:
        if permit.owner is not self:
            return self.fallback.record(permit, code) if permit.owner is self.fallback else None
        state = self.redis
        args = (state.now_arg(), self._cfg, permit.epoch, permit.lease or "", code)
        return self._recorded(await state.arun(_RECORD, self._keys, args))

    async def arelease(self, permit: Permit) -> None:
        if permit.lease is None:
            return
        if permit.owner is not self:
            self.fallback.release(permit)
            return
        state = self.redis
        await state.arun(_RELEASE, self._keys2, (state.now_arg(), self._cfg, permit.epoch, permit.lease))

    async def acontrol(self, target: BreakerState) -> tuple[bool, Transition | None]:
        self.fallback.control(target)
        state = self.redis
        args = (state.now_arg(), self._cfg, STATE_CODES.index(target))
        reply = await state.arun(_CONTROL, self._keys, args)
        if reply is UNAVAILABLE:
            return False, None
        self.last_state = target
        return True, _transition(reply)

    async def aview(self) -> StoreView:
        state = self.redis
        return self._view(await state.arun(_SNAPSHOT, self._keys, (state.now_arg(), self._cfg)))

    # -- reporting -----------------------------------------------------------------------------------

    def info(self) -> StoreInfo:
        return StoreInfo("redis", shared=True, available=self.redis.available, detail=f"key {self.key}")

    def check(self) -> CheckResult:
        return self.redis.check()
