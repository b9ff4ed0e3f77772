-- Cache: remove the members of one tag set that still carry the tag, and forget them.
-- KEYS: the tag set, then members read from it. ARGV: the escaped tag. The set goes once empty;
-- members added since they were read stay (they were set after the invalidation began).
--@include cache_tags

local needle = ',' .. ARGV[1] .. ','
local removed = 0
for i = 2, #KEYS do
  local value = redis.pcall('GET', KEYS[i])
  local field = type(value) == 'string' and tags_of(value)
  if field and string.find(',' .. field .. ',', needle, 1, true) then
    removed = removed + redis.call('UNLINK', KEYS[i])
  end
  redis.call('SREM', KEYS[1], KEYS[i])
end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('UNLINK', KEYS[1]) end
return removed
