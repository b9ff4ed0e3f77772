-- Cache: new TTL for a value, its tag sets kept at least as long. KEYS: value, its tag sets.
-- ARGV: ms or '', the tags field the caller expects. When the value's tags differ from it, nothing
-- changes and the reply is {field}: the caller passes those tag sets and calls again.
--@include cache_tags

local ttl = tonumber(ARGV[1])
local value = redis.pcall('GET', KEYS[1])
if not value then return 0 end
local field = (type(value) == 'string' and tags_of(value)) or ''
if field ~= ARGV[2] then return {field} end
if ttl then
  if redis.call('PEXPIRE', KEYS[1], ttl) == 0 then return 0 end
  if ttl <= 0 then return 1 end
else
  redis.call('PERSIST', KEYS[1])
end
for i = 2, #KEYS do extend(KEYS[i], KEYS[1], ttl) end
return 1
