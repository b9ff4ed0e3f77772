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

-- Time window: k outcomes (failed, slow: 0 or 1 each) in the bucket of `tick`. A tick behind the head
-- (a batch flushed after another process moved the window on) lands in its bucket while it is in the window.
local function add_at(tick, k, failed, slow)
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
  elseif head - tick >= WS then
    return
  end
  local slot = tick % WS
  redis.call('HINCRBY', W, 'c' .. slot, k)
  redis.call('HINCRBY', W, 'f' .. slot, failed * k)
  redis.call('HINCRBY', W, 's' .. slot, slow * k)
  redis.call('HINCRBY', W, 'c', k)
  redis.call('HINCRBY', W, 'f', failed * k)
  redis.call('HINCRBY', W, 's', slow * k)
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
  add_at(math.floor(now / BU), 1, failed, slow)
  redis.call('PEXPIRE', W, TTL)
  local w = redis.call('HMGET', W, 'c', 'f', 's')
  return tonumber(w[1]), tonumber(w[2]), tonumber(w[3])
end

-- Count window: k successes after the last outcome (only the last WS of them can still be in the ring).
local function add_successes(k)
  local n = redis.call('HINCRBY', W, 'n', k)
  local df, ds = 0, 0
  for i = math.max(n - k, n - WS), n - 1 do
    local slot = 'r' .. (i % WS)
    local old = tonumber(redis.call('HGET', W, slot)) or 0
    if old > 0 then
      local of = old % 2
      df, ds = df + of, ds + (old - of) / 2
      redis.call('HDEL', W, slot)
    end
  end
  if df > 0 then redis.call('HINCRBY', W, 'f', 0 - df) end
  if ds > 0 then redis.call('HINCRBY', W, 's', 0 - ds) end
end

-- The successes a process batched in one CLOSED period ("epoch age_us count age_us count ..."; the ages
-- place them in a time window, a count window ignores them), applied before anything else the script
-- does, so they precede its outcome as they did in the process; ignored once that period is over.
local function flush(batch)
  if batch == '' or st ~= 0 then return end
  local b = {}
  for v in string.gmatch(batch, '%S+') do b[#b + 1] = tonumber(v) end
  if b[1] ~= ep then return end
  for i = 2, #b, 2 do
    if WT == 0 then add_successes(b[i + 1]) else add_at(math.floor((now - b[i]) / BU), b[i + 1], 0, 0) end
  end
  if (tonumber(redis.call('HGET', K, 'cf')) or 0) > 0 then redis.call('HSET', K, 'cf', 0) end
  redis.call('PEXPIRE', W, TTL)
  redis.call('PEXPIRE', K, TTL)
end
