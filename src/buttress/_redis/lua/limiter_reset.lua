-- Rate limiter: forget a bucket (it is full again). KEYS: bucket. ARGV: now.
--@include now

return redis.call('DEL', KEYS[1])
