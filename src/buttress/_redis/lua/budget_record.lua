-- Retry budget: count one call. KEYS: budget hash. ARGV: now, step (us), buckets, ttl (ms).
--@include now
--@include budget_bucket

if tonumber(redis.call('HGET', key, 'e' .. slot)) == epoch then
  redis.call('HINCRBY', key, 'c' .. slot, 1)
else
  redis.call('HSET', key, 'e' .. slot, fmt(epoch), 'c' .. slot, 1, 'r' .. slot, 0)
end
redis.call('PEXPIRE', key, ARGV[4])
return 1
