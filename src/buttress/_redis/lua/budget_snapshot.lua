--@include now
--@include budget_bucket
--@include budget_sum
return {calls, retries}
