-- Expects K (state hash), W (window hash or nil), L (lease set) and CONFIG (the config string) in scope.
-- Every transition is published on the channel named like the state key: the new epoch * 8 + state.
local cfg = {}
for v in string.gmatch(CONFIG, '%S+') do cfg[#cfg + 1] = tonumber(v) end
local CF, FR, SR, WT, WS, BU, MINC, OD0, ODMAX, PROBES, LEASE, TTL = unpack(cfg)
local se = tonumber(redis.call('HGET', K, 's')) or 0
local st = se % 8
local ep = (se - st) / 8

local function enter(target)
  local source = st
  ep = ep + 1
  st = target
  redis.call('HSET', K, 's', ep * 8 + target, 'hs', 0)
  redis.call('DEL', L)
  redis.call('PUBLISH', K, ep * 8 + target)  -- every process's copy of the state, on the key's channel
  return source
end

local function open(duration, fr)
  local source = enter(1)
  redis.call('HSET', K, 'cf', 0, 'od', fmt(duration), 'ou', fmt(now + duration))
  redis.call('PEXPIRE', K, TTL)
  return {'opened', source, 1, fr, duration}
end

local function reopen()
  return open(math.min((tonumber(redis.call('HGET', K, 'od')) or OD0) * 2, ODMAX), '')
end

local function close(what)
  local source = enter(0)
  redis.call('DEL', W)
  redis.call('HSET', K, 'cf', 0, 'od', fmt(OD0), 'ou', 0)
  redis.call('PEXPIRE', K, TTL)
  return {what, source, 0, '', -1}
end

-- A record or control reply: the state after the script (epoch * 8 + state), then its transition if any.
local function answer(t)
  if t == 0 then return {ep * 8 + st} end
  table.insert(t, 1, ep * 8 + st)
  return t
end
