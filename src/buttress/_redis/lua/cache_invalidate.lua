-- Cache: remove every value still carrying a tag, then the tag sets. KEYS: tag sets. ARGV: escaped tags.
--@include cache_tags

local removed = 0
for i, tagkey in ipairs(KEYS) do
  local needle = ',' .. ARGV[i] .. ','
  for _, member in ipairs(redis.call('SMEMBERS', tagkey)) do
    local value = redis.pcall('GET', member)
    local field = type(value) == 'string' and tags_of(value)
    if field and string.find(',' .. field .. ',', needle, 1, true) then
      removed = removed + redis.call('UNLINK', member)
    end
  end
  redis.call('UNLINK', tagkey)
end
return removed
