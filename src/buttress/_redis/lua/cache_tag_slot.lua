-- Cache on a cluster: note that a tag has members in a slot. KEYS: the tag's slot index. ARGV: slot,
-- TTL in ms or ''. The index lives at least as long as any of the tag's per-slot sets.
--@include cache_tags

extend(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
