-- Rate limiter (GCRA): decide and reserve. KEYS: bucket. ARGV: now, interval us, burst, cost, max wait us.
-- Admitted at once: the new TAT as an integer (floored: only a wait is ever refunded). Admitted after a wait:
-- 'wait new' (the wait and the exact new TAT). Refused: '-wait'. The common answer is the cheapest to parse.
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
if wait > max_wait + 1 then return fmt(-wait) end
redis.call('SET', KEYS[1], fmt(new), 'PX', math.ceil((new - now) / 1000) + 1000)
if wait == 0 then return math.floor(new) end
return fmt(wait) .. ' ' .. fmt(new)
