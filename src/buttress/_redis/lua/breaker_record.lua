-- Circuit breaker: record an outcome. KEYS: state hash, window, leases.
-- ARGV: now, config, epoch, lease ('' for a CLOSED permit), outcome code, batch (the caller's batched
-- successes, applied first). Returns {epoch * 8 + state after it} or that followed by a transition.
--@include now
local K, W, L = KEYS[1], KEYS[2], KEYS[3]
local CONFIG = ARGV[2]
--@include breaker_header
--@include breaker_window

local function record()
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
  local first = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= now then return reopen() end
  if redis.call('ZREM', L, lease) == 0 then return 0 end
  if failed == 1 or (slow == 1 and SR > 0) then return reopen() end
  if redis.call('HINCRBY', K, 'hs', 1) >= PROBES then return close('closed') end
  return 0
end

flush(ARGV[6])
return answer(record())
