-- Circuit breaker: reset, isolate or disable. KEYS: state hash, window, leases.
-- ARGV: now, config, target state code (0, 3, 4), batch (the caller's batched successes, applied
-- first). Returns {epoch * 8 + state after it} or that followed by a transition.
--@include now
local K, W, L = KEYS[1], KEYS[2], KEYS[3]
local CONFIG = ARGV[2]
--@include breaker_header
--@include breaker_window

local function control()
  local target = tonumber(ARGV[3])
  if target == 0 then return close('reset') end
  if st == target then return 0 end
  local source = enter(target)
  redis.call('PEXPIRE', K, TTL)
  local what = 'disabled'
  if target == 3 then what = 'forced_open' end
  return {what, source, target, '', -1}
end

flush(ARGV[4])
return answer(control())
