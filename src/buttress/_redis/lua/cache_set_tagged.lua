-- Cache: SET a value and add it to its tag sets. KEYS: value, tag sets. ARGV: bytes, TTL in ms or ''.
--@include cache_tags

local ttl = tonumber(ARGV[2])
if ttl then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do extend(KEYS[i], KEYS[1], ttl) end
return 1
