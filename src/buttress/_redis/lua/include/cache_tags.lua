local function extend(tagkey, member, ttl)
  local before = redis.call('PTTL', tagkey)
  redis.call('SADD', tagkey, member)
  if not ttl then
    if before >= 0 then redis.call('PERSIST', tagkey) end
  elseif before == -2 or (before >= 0 and before < ttl) then
    redis.call('PEXPIRE', tagkey, ttl)
  end
end
local function tags_of(value)
  local nl = string.find(value, '\n', 1, true)
  if not nl then return nil end
  local tab = string.find(value, '\t', 1, true)
  if not tab or tab > nl then return nil end
  return string.sub(value, tab + 1, nl - 1)
end
