-- Retry budget: read {calls, retries} in the window. KEYS: budget hash. ARGV: now, step, buckets.
--@include now
--@include budget_bucket
--@include budget_sum
return {calls, retries}
