local step = tonumber(ARGV[2])
local buckets = tonumber(ARGV[3])
local key = KEYS[1]
local epoch = math.floor(now / step)
local slot = epoch % buckets
