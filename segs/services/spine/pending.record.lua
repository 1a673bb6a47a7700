--- KEYS: pending pending_at
--- ARGV: published_at batches[...]
-- Runs once per shard of a request (a sectioned script). batches: task id, payload, task id,
-- payload... Each batch is scored published_at in pending_at, and its payload kept in pending
-- unless it is empty (the broker holds the batch safely).
for i = 1, #batches, 2 do
  if batches[i + 1] ~= '' then redis.call('HSET', pending, batches[i], batches[i + 1]) end
  redis.call('ZADD', pending_at, published_at, batches[i])
end
return 1
