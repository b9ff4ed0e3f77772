-- Circuit breaker: admit a call. KEYS: state hash, window, leases. ARGV: now, config, batch.
-- The batched successes of the caller's CLOSED period are applied first (include breaker_window).
-- CLOSED -> epoch, DISABLED -> -1 - epoch, a probe permit -> {0, epoch, lease, moved}, a refusal ->
-- {state, retry_us, moved, epoch * 8 + state} (moved: an expired probe lease reopened it here). At most
-- PROBES trial calls per half-open period: the live leases plus the probes that succeeded.
--@include now
local K, W, L = KEYS[1], KEYS[2], KEYS[3]
local CONFIG = ARGV[2]
--@include breaker_header
--@include breaker_window

flush(ARGV[3])
if st == 0 then
  redis.call('PEXPIRE', K, TTL)
  return ep
end
if st == 4 then return -1 - ep end
if st == 3 then return {3, tonumber(redis.call('HGET', K, 'od')) or OD0, 0, ep * 8 + st} end
local moved = 0
if st == 1 then
  local ou = tonumber(redis.call('HGET', K, 'ou')) or 0
  if now < ou then return {1, ou - now, 0, ep * 8 + st} end
  enter(2)
  moved = 1
else
  local first = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= now then
    local t = reopen()
    return {1, t[5], 1, ep * 8 + st}
  end
  if redis.call('ZCARD', L) + (tonumber(redis.call('HGET', K, 'hs')) or 0) >= PROBES then
    return {2, tonumber(first[2]) - now, 0, ep * 8 + st}
  end
end
local id = redis.call('HINCRBY', K, 'ln', 1)
redis.call('ZADD', L, fmt(now + LEASE), id)
redis.call('PEXPIRE', K, TTL)
redis.call('PEXPIRE', L, TTL)
return {0, ep, id, moved}
