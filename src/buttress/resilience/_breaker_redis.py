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
from buttress.resilience._redis_state import LUA_NOW, UNAVAILABLE, Script
from buttress.resilience._stores import StoreInfo

if TYPE_CHECKING:
    from buttress.health_types import CheckResult
    from buttress.resilience._redis_state import RedisState

__all__ = ["UNREACHABLE_RETRY_AFTER", "RedisBreakerStore"]

UNREACHABLE_RETRY_AFTER: Final = 1.0
"""``retry_after`` of a call refused because Redis is unreachable under the ``closed`` policy."""

_HEADER = """
local K, W, L = KEYS[1], KEYS[2], KEYS[3]
local cfg = {}
for v in string.gmatch(CONFIG, '%S+') do cfg[#cfg + 1] = tonumber(v) end
local CF, FR, SR, WT, WS, BU, MINC, OD0, ODMAX, PROBES, LEASE, TTL = unpack(cfg)
local se = tonumber(redis.call('HGET', K, 's')) or 0
local st = se % 8
local ep = (se - st) / 8

local function enter(target)
  local source = st
  ep = ep + 1
  st = target
  redis.call('HSET', K, 's', ep * 8 + target, 'hs', 0, 'c', CONFIG)
  redis.call('DEL', L)
  return source
end

local function open(duration, fr)
  local source = enter(1)
  redis.call('HSET', K, 'cf', 0, 'od', fmt(duration), 'ou', fmt(now + duration))
  redis.call('PEXPIRE', K, TTL)
  return {'opened', source, 1, fr, duration}
end

local function close(what)
  local source = enter(0)
  redis.call('DEL', W)
  redis.call('HSET', K, 'cf', 0, 'od', fmt(OD0), 'ou', 0)
  redis.call('PEXPIRE', K, TTL)
  return {what, source, 0, '', -1}
end
"""


def _header(keys: str = "KEYS[1], KEYS[2], KEYS[3]", config: str = "ARGV[2]") -> str:
    """The shared Lua header: keys, the parsed config, the state, and the transition helpers."""
    return _HEADER.replace("KEYS[1], KEYS[2], KEYS[3]", keys).replace("CONFIG", config)


_WINDOW = """
local function stats()
  if WT == 0 then
    local w = redis.call('HMGET', W, 'n', 'f', 's')
    return math.min(tonumber(w[1]) or 0, WS), tonumber(w[2]) or 0, tonumber(w[3]) or 0
  end
  local w = redis.call('HMGET', W, 'h', 'c', 'f', 's')
  local head, tick = tonumber(w[1]), math.floor(now / BU)
  if not head or tick - head >= WS then return 0, 0, 0 end
  local c, f, s = tonumber(w[2]) or 0, tonumber(w[3]) or 0, tonumber(w[4]) or 0
  for t = head + 1, tick do
    local slot = t % WS
    local b = redis.call('HMGET', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
    c = c - (tonumber(b[1]) or 0)
    f = f - (tonumber(b[2]) or 0)
    s = s - (tonumber(b[3]) or 0)
  end
  return c, f, s
end

local function add(failed, slow, code)
  if WT == 0 then
    local i = redis.call('HINCRBY', W, 'n', 1) - 1
    local slot = 'r' .. (i % WS)
    local old = tonumber(redis.call('HGET', W, slot)) or 0
    redis.call('HSET', W, slot, code)
    local of = old % 2
    local f = redis.call('HINCRBY', W, 'f', failed - of)
    local s = redis.call('HINCRBY', W, 's', slow - (old - of) / 2)
    redis.call('PEXPIRE', W, TTL)
    return math.min(i + 1, WS), f, s
  end
  local tick = math.floor(now / BU)
  local head = tonumber(redis.call('HGET', W, 'h'))
  if not head or tick - head >= WS then
    redis.call('DEL', W)
    redis.call('HSET', W, 'h', tick)
  elseif tick > head then
    for t = head + 1, tick do
      local slot = t % WS
      local b = redis.call('HMGET', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
      if b[1] then
        redis.call('HINCRBY', W, 'c', 0 - tonumber(b[1]))
        redis.call('HINCRBY', W, 'f', 0 - tonumber(b[2]))
        redis.call('HINCRBY', W, 's', 0 - tonumber(b[3]))
        redis.call('HDEL', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
      end
    end
    redis.call('HSET', W, 'h', tick)
  end
  local slot = tick % WS
  redis.call('HINCRBY', W, 'c' .. slot, 1)
  redis.call('HINCRBY', W, 'f' .. slot, failed)
  redis.call('HINCRBY', W, 's' .. slot, slow)
  local c = redis.call('HINCRBY', W, 'c', 1)
  local f = redis.call('HINCRBY', W, 'f', failed)
  local s = redis.call('HINCRBY', W, 's', slow)
  redis.call('PEXPIRE', W, TTL)
  return c, f, s
end
"""

# KEYS: hash, leases. ARGV: now (left out when Redis TIME is the clock). The CLOSED path returns before
# anything else; the rest reads the config that the last transition stored in the hash (an argument costs
# the common case a few percent). CLOSED -> epoch, DISABLED -> -1, else {0, epoch, lease, moved} for a
# probe permit or {state, retry_after_us} for a refusal.
_ACQUIRE = Script(
    """
local se0 = tonumber(redis.call('HGET', KEYS[1], 's')) or 0
if se0 % 8 == 0 then return (se0 - se0 % 8) / 8 end
if se0 % 8 == 4 then return -1 end
"""
    + LUA_NOW
    + _header(keys="KEYS[1], nil, KEYS[2]", config="redis.call('HGET', KEYS[1], 'c')")
    + """
if st == 3 then return {3, tonumber(redis.call('HGET', K, 'od')) or OD0} end
local moved = 0
if st == 1 then
  local ou = tonumber(redis.call('HGET', K, 'ou')) or 0
  if now < ou then return {1, ou - now} end
  enter(2)
  moved = 1
else
  redis.call('ZREMRANGEBYSCORE', L, '-inf', fmt(now))
  if redis.call('ZCARD', L) >= PROBES then
    local first = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
    return {2, tonumber(first[2]) - now}
  end
end
local id = redis.call('HINCRBY', K, 'ln', 1)
redis.call('ZADD', L, fmt(now + LEASE), id)
redis.call('PEXPIRE', K, TTL)
redis.call('PEXPIRE', L, TTL)
return {0, ep, id, moved}
"""
)

# ARGV: now, config, epoch, lease ('' for a CLOSED permit), outcome code. Returns 0 or a transition.
_RECORD = Script(
    LUA_NOW
    + _header()
    + _WINDOW
    + """
local lease, code = ARGV[4], tonumber(ARGV[5])
if tonumber(ARGV[3]) ~= ep then return 0 end
local failed = code % 2
local slow = (code - failed) / 2
if lease == '' then
  if st ~= 0 then return 0 end
  local calls, f, s = add(failed, slow, code)
  local cf = 0
  if failed == 1 then
    cf = redis.call('HINCRBY', K, 'cf', 1)
  elseif (tonumber(redis.call('HGET', K, 'cf')) or 0) > 0 then
    redis.call('HSET', K, 'cf', 0)
  end
  local trip = failed == 1 and CF > 0 and cf >= CF
  if not trip and calls >= MINC then
    trip = (failed == 1 and FR > 0 and f / calls >= FR) or (slow == 1 and SR > 0 and s / calls >= SR)
  end
  if trip then
    local fr = ''
    if calls > 0 then fr = fmt(f / calls) end
    return open(OD0, fr)
  end
  redis.call('PEXPIRE', K, TTL)
  return 0
end
if st ~= 2 then return 0 end
local expires = tonumber(redis.call('ZSCORE', L, lease))
if not expires then return 0 end
redis.call('ZREM', L, lease)
if expires <= now then return 0 end
if failed == 1 or (slow == 1 and SR > 0) then
  return open(math.min((tonumber(redis.call('HGET', K, 'od')) or OD0) * 2, ODMAX), '')
end
if redis.call('HINCRBY', K, 'hs', 1) >= PROBES then return close('closed') end
return 0
"""
)

# KEYS: hash, leases. ARGV: now, config, epoch, lease.
_RELEASE = Script(
    LUA_NOW
    + _header(keys="KEYS[1], nil, KEYS[2]")
    + """
if tonumber(ARGV[3]) == ep then redis.call('ZREM', L, ARGV[4]) end
return 0
"""
)

# ARGV: now, config, target state code (0 reset, 3 isolate, 4 disable). Returns 0 or a transition.
_CONTROL = Script(
    LUA_NOW
    + _header()
    + """
local target = tonumber(ARGV[3])
if target == 0 then return close('reset') end
if st == target then return 0 end
local source = enter(target)
redis.call('PEXPIRE', K, TTL)
local what = 'disabled'
if target == 3 then what = 'forced_open' end
return {what, source, target, '', -1}
"""
)

# ARGV: now, config. Returns {state, calls, failures, slow, retry_after_us or -1, open_duration_us}.
_SNAPSHOT = Script(
    LUA_NOW
    + _header()
    + _WINDOW
    + """
local calls, f, s = stats()
local retry = -1
if st == 1 then
  retry = math.max((tonumber(redis.call('HGET', K, 'ou')) or 0) - now, 0)
elseif st == 2 then
  local live = redis.call('ZRANGEBYSCORE', L, '(' .. fmt(now), '+inf', 'WITHSCORES')
  retry = 0
  if #live / 2 >= PROBES then retry = tonumber(live[2]) - now end
end
return {st, calls, f, s, retry, tonumber(redis.call('HGET', K, 'od')) or OD0}
"""
)

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
    """One breaker's state in Redis, shared by every process that uses the same namespace and ``name``.

    A :class:`~buttress.resilience.BreakerStore`; ``twin`` (built from ``config`` when not given) is the
    in-memory state used under the ``local`` outage policy.
    """

    kind = "redis"
    shared = True

    def __init__(
        self, state: RedisState, name: str, config: BreakerConfig, twin: MemoryBreakerStore | None = None
    ) -> None:
        self.redis = state
        self.name = name
        self.config = config
        self.twin = twin if twin is not None else MemoryBreakerStore(config, state.clock.monotonic)
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
            return self.twin.state
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
        return Admission(None, state, reply[1] / 1_000_000, None)

    def _unavailable(self) -> Admission:
        policy = self.redis.policy
        if policy == "local":
            return self.twin.acquire()
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
                return self.twin.view()
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
            return self.twin.record(permit, code) if permit.owner is self.twin else None
        state = self.redis
        args = (state.now_arg(), self._cfg, permit.epoch, permit.lease or "", code)
        return self._recorded(state.run(_RECORD, self._keys, args))

    def release(self, permit: Permit) -> None:
        if permit.lease is None:
            return
        if permit.owner is not self:
            self.twin.release(permit)
            return
        state = self.redis
        state.run(_RELEASE, self._keys2, (state.now_arg(), self._cfg, permit.epoch, permit.lease))

    def control(self, target: BreakerState) -> tuple[bool, Transition | None]:
        """Apply ``target`` in Redis and to the twin: (reached Redis, the transition Redis made)."""
        self.twin.control(target)
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
            return self.twin.record(permit, code) if permit.owner is self.twin else None
        state = self.redis
        args = (state.now_arg(), self._cfg, permit.epoch, permit.lease or "", code)
        return self._recorded(await state.arun(_RECORD, self._keys, args))

    async def arelease(self, permit: Permit) -> None:
        if permit.lease is None:
            return
        if permit.owner is not self:
            self.twin.release(permit)
            return
        state = self.redis
        await state.arun(_RELEASE, self._keys2, (state.now_arg(), self._cfg, permit.epoch, permit.lease))

    async def acontrol(self, target: BreakerState) -> tuple[bool, Transition | None]:
        self.twin.control(target)
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
