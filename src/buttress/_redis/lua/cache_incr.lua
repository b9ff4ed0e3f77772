-- Cache: INCRBY, TTL only when it creates the key; adds inside an integer envelope. KEYS: key. ARGV: delta, ms or ''.
local created = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'number' then
  -- Return the stored decimal, not n: a Lua number is a double and would round a result past 2^53.
  local exact = redis.call('GET', KEYS[1])
  if created and ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return exact
end
local value = redis.call('GET', KEYS[1])
if string.match(value, '^%-?%d+$') then return redis.error_reply('RANGE') end  -- a bare counter overflowed
local head, digits = string.match(value, '^(#[^\n]*\n)(%-?%d+)$')
if not head then return redis.error_reply('NOTINT') end
local limit = 9007199254740992
local total = tonumber(digits) + tonumber(ARGV[1])
if #digits > 15 or math.abs(tonumber(ARGV[1])) >= limit or math.abs(total) >= limit then
  return redis.error_reply('RANGE')
end
redis.call('SET', KEYS[1], head .. string.format('%d', total), 'KEEPTTL')
return total
