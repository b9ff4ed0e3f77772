local fields = {}
for i = 0, buckets - 1 do
  fields[#fields + 1] = 'e' .. i
  fields[#fields + 1] = 'c' .. i
  fields[#fields + 1] = 'r' .. i
end
local values = redis.call('HMGET', key, unpack(fields))
local calls, retries = 0, 0
for i = 0, buckets - 1 do
  local e = tonumber(values[3 * i + 1])
  if e and e > epoch - buckets and e <= epoch then
    calls = calls + (tonumber(values[3 * i + 2]) or 0)
    retries = retries + (tonumber(values[3 * i + 3]) or 0)
  end
end
