-- Circuit breaker: give back an unused probe lease. KEYS: state hash, leases. ARGV: now, config, epoch, lease.
--@include now
local K, W, L = KEYS[1], nil, KEYS[2]
local CONFIG = ARGV[2]
--@include breaker_header

if tonumber(ARGV[3]) == ep then redis.call('ZREM', L, ARGV[4]) end
return 0
