-- Circuit breaker: read the state. KEYS: state hash, window, leases. ARGV: now, config, batch (the
-- caller's batched successes, applied first: also how a process flushes them and re-reads the state).
-- Returns {state, calls, failures, slow, retry_after_us or -1, open_duration_us, epoch * 8 + state}.
--@include now
local K, W, L = KEYS[1], KEYS[2], KEYS[3]
local CONFIG = ARGV[2]
--@include breaker_header
--@include breaker_window

flush(ARGV[3])
local calls, f, s = stats()
local retry = -1
if st == 1 then
  retry = math.max((tonumber(redis.call('HGET', K, 'ou')) or 0) - now, 0)
elseif st == 2 then
  retry = 0
  if redis.call('ZCARD', L) + (tonumber(redis.call('HGET', K, 'hs')) or 0) >= PROBES then
    local first = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
    retry = math.max(tonumber(first[2]) - now, 0)
  end
end
return {st, calls, f, s, retry, tonumber(redis.call('HGET', K, 'od')) or OD0, ep * 8 + st}
