-- Realtime topic log: what a client resuming after a position needs, read at one instant.
-- KEYS: epoch, position, stream. ARGV: candidate epoch, the first position wanted, count.
-- Returns {epoch, newest position (nil if none), the oldest entry kept, the entries after the position};
-- an entry is {id, {field, value, ...}}. A log without an epoch starts one here, as an append would, so
-- the answer names the epoch the next appends join. One script, so atomic on one Redis and on a cluster.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return {
  redis.call('GET', KEYS[1]),
  redis.call('GET', KEYS[2]),
  redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1),
  redis.call('XRANGE', KEYS[3], ARGV[2] .. '-0', '+', 'COUNT', ARGV[3]),
}
