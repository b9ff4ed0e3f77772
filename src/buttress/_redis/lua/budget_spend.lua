-- Retry budget: take one retry if allowed. KEYS: budget hash.
-- ARGV: now, step, buckets, ttl, ratio, min_retries. Returns {allowed, calls, retries}.
--@include now
--@include budget_bucket
--@include budget_sum

local ratio = tonumber(ARGV[5])
local min_retries = tonumber(ARGV[6])
if retries + 1 > ratio * calls + min_retries then
  return {0, calls, retries}
end
if tonumber(values[3 * slot + 1]) == epoch then
  redis.call('HINCRBY', key, 'r' .. slot, 1)
else
  redis.call('HSET', key, 'e' .. slot, fmt(epoch), 'c' .. slot, 0, 'r' .. slot, 1)
end
redis.call('PEXPIRE', key, ARGV[4])
return {1, calls, retries + 1}
