-- Rate limiter: give back a reservation if no one reserved after it. KEYS: bucket.
-- ARGV: now, interval us, cost, the TAT the reservation set.
--@include now

local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local expected = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or math.abs(tat - expected) >= interval / 2 then return 0 end
local new = math.max(tat - cost * interval, now)
redis.call('SET', KEYS[1], fmt(new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 1
