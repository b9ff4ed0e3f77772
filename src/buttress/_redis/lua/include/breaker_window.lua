local function stats()
  if WT == 0 then
    local w = redis.call('HMGET', W, 'n', 'f', 's')
    return math.min(tonumber(w[1]) or 0, WS), tonumber(w[2]) or 0, tonumber(w[3]) or 0
  end
  local w = redis.call('HMGET', W, 'h', 'c', 'f', 's')
  local head, tick = tonumber(w[1]), math.floor(now / BU)
  if not head or tick - head >= WS then return 0, 0, 0 end
  local c, f, s = tonumber(w[2]) or 0, tonumber(w[3]) or 0, tonumber(w[4]) or 0
  for t = head + 1, tick do
    local slot = t % WS
    local b = redis.call('HMGET', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
    c = c - (tonumber(b[1]) or 0)
    f = f - (tonumber(b[2]) or 0)
    s = s - (tonumber(b[3]) or 0)
  end
  return c, f, s
end

local function add(failed, slow, code)
  if WT == 0 then
    local i = redis.call('HINCRBY', W, 'n', 1) - 1
    local slot = 'r' .. (i % WS)
    local old = tonumber(redis.call('HGET', W, slot)) or 0
    redis.call('HSET', W, slot, code)
    local of = old % 2
    local f = redis.call('HINCRBY', W, 'f', failed - of)
    local s = redis.call('HINCRBY', W, 's', slow - (old - of) / 2)
    redis.call('PEXPIRE', W, TTL)
    return math.min(i + 1, WS), f, s
  end
  local tick = math.floor(now / BU)
  local head = tonumber(redis.call('HGET', W, 'h'))
  if not head or tick - head >= WS then
    redis.call('DEL', W)
    redis.call('HSET', W, 'h', tick)
  elseif tick > head then
    for t = head + 1, tick do
      local slot = t % WS
      local b = redis.call('HMGET', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
      if b[1] then
        redis.call('HINCRBY', W, 'c', 0 - tonumber(b[1]))
        redis.call('HINCRBY', W, 'f', 0 - tonumber(b[2]))
        redis.call('HINCRBY', W, 's', 0 - tonumber(b[3]))
        redis.call('HDEL', W, 'c' .. slot, 'f' .. slot, 's' .. slot)
      end
    end
    redis.call('HSET', W, 'h', tick)
  end
  local slot = tick % WS
  redis.call('HINCRBY', W, 'c' .. slot, 1)
  redis.call('HINCRBY', W, 'f' .. slot, failed)
  redis.call('HINCRBY', W, 's' .. slot, slow)
  local c = redis.call('HINCRBY', W, 'c', 1)
  local f = redis.call('HINCRBY', W, 'f', failed)
  local s = redis.call('HINCRBY', W, 's', slow)
  redis.call('PEXPIRE', W, TTL)
  return c, f, s
end
