-- Rate limiter (GCRA): decide and reserve. KEYS: bucket. ARGV: now, interval us, burst, cost, max wait us.
-- Returns {1, wait us, new TAT} when admitted, else {0, wait us}.
--@include now

local interval = tonumber(ARGV[2])
local span = tonumber(ARGV[3]) * interval
local cost = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new = tat + cost * interval
local wait = new - span - now
if wait <= 1 then wait = 0 end
if wait > max_wait + 1 then return {0, fmt(wait)} end
redis.call('SET', KEYS[1], fmt(new), 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, fmt(wait), fmt(new)}
