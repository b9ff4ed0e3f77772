-- Rate limiter: tokens available now in each bucket; changes nothing. KEYS: buckets. ARGV: now, interval us, burst.
--@include now

local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key)) or now
  out[i] = fmt(burst - math.max(tat - now, 0) / interval)
end
return out
