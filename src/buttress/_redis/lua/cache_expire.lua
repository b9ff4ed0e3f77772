-- Cache: new TTL for a value, its tag sets kept at least as long. KEYS: value. ARGV: ms or '', tag-set prefix.
--@include cache_tags

local ttl = tonumber(ARGV[1])
local value = redis.pcall('GET', KEYS[1])
if not value then return 0 end
if ttl then
  if redis.call('PEXPIRE', KEYS[1], ttl) == 0 then return 0 end
  if ttl <= 0 then return 1 end
else
  redis.call('PERSIST', KEYS[1])
end
local field = type(value) == 'string' and tags_of(value)
if field and field ~= '' then
  for tag in string.gmatch(field, '[^,]+') do
    tag = string.gsub(tag, '%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end)
    extend(ARGV[2] .. tag, KEYS[1], ttl)
  end
end
return 1
