-- Realtime topic log: append a batch of entries. KEYS: stream, offsets, epoch, position, done.
-- ARGV: candidate epoch, retention, batch number, sender, then topic, time, data for each entry.
-- Returns {epoch, newest position, entries written}.
--
-- The epoch names one life of the log's data. A log whose epoch key is missing starts a new one (a fresh or
-- restarted Redis, an evicted key); whatever older entries remain cannot belong to it, so they are removed
-- and positions and offsets count from 1 again.
local stream, offsets, epoch_key, position_key, done_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if redis.call('SET', epoch_key, ARGV[1], 'NX') then
  redis.call('DEL', stream, offsets, position_key, done_key)
end
local epoch = redis.call('GET', epoch_key)
-- Each sender numbers its batches. A batch it sends again because the reply was lost (not the command)
-- was already written: writing it twice would give its entries two positions each.
local batch = tonumber(ARGV[3])
if batch <= (tonumber(redis.call('GET', done_key)) or 0) then
  return {epoch, tonumber(redis.call('GET', position_key)) or 0, 0}
end
redis.call('SET', done_key, ARGV[3], 'EX', 86400)
local position = tonumber(redis.call('GET', position_key)) or 0
local count = 0
local batch_id = ARGV[4] .. ':' .. ARGV[3]  -- lets followers tell a batch written again in a new epoch
for i = 5, #ARGV, 3 do
  position = redis.call('INCR', position_key)
  local offset = redis.call('HINCRBY', offsets, ARGV[i], 1)
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], string.format('%d-0', position),
    'epoch', epoch, 'topic', ARGV[i], 'offset', offset, 'time', ARGV[i + 1], 'data', ARGV[i + 2],
    'batch', batch_id)
  count = count + 1
end
return {epoch, position, count}
