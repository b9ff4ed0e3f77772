-- Circuit breaker: admit a call. KEYS: state hash, leases. ARGV: now (absent: Redis TIME).
-- CLOSED -> epoch, DISABLED -> -1, a probe permit -> {0, epoch, lease, moved}, a refusal -> {state, retry_us}
-- ({1, retry_us, 1} when an expired probe lease reopened it here). At most PROBES trial calls per half-open
-- period: the live leases plus the probes that succeeded.
local se0 = tonumber(redis.call('HGET', KEYS[1], 's')) or 0
if se0 % 8 == 0 then return (se0 - se0 % 8) / 8 end
if se0 % 8 == 4 then return -1 end
--@include now
local K, W, L = KEYS[1], nil, KEYS[2]
local CONFIG = redis.call('HGET', KEYS[1], 'c')
--@include breaker_header

if st == 3 then return {3, tonumber(redis.call('HGET', K, 'od')) or OD0} end
local moved = 0
if st == 1 then
  local ou = tonumber(redis.call('HGET', K, 'ou')) or 0
  if now < ou then return {1, ou - now} end
  enter(2)
  moved = 1
else
  local first = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= now then
    local t = reopen()
    return {1, t[5], 1}
  end
  if redis.call('ZCARD', L) + (tonumber(redis.call('HGET', K, 'hs')) or 0) >= PROBES then
    return {2, tonumber(first[2]) - now}
  end
end
local id = redis.call('HINCRBY', K, 'ln', 1)
redis.call('ZADD', L, fmt(now + LEASE), id)
redis.call('PEXPIRE', K, TTL)
redis.call('PEXPIRE', L, TTL)
return {0, ep, id, moved}
