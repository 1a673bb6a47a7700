--- KEYS: open_windows flushing
--- ARGV: cutoff limit window_prefix flushing_prefix
-- Moves the shard's windows due by cutoff (µs), up to limit, out of its open set for flushing.
-- Only windows named window_prefix... (one size) move, each renamed flushing_prefix... (the
-- same hash tag). A RENAME, so readings folded a moment later open a fresh hash (flushed and
-- merged next time) instead of landing in one being written to PostgreSQL. Returns how many.
local due = redis.call('ZRANGEBYSCORE', open_windows, '-inf', cutoff, 'LIMIT', 0, limit)
local moved = 0
for _, key in ipairs(due) do
  if string.sub(key, 1, #window_prefix) == window_prefix then
    redis.call('ZREM', open_windows, key)
    moved = moved + 1
    if redis.call('EXISTS', key) == 1 then
      local dest = flushing_prefix .. string.sub(key, #window_prefix + 1)
      redis.call('RENAME', key, dest)
      redis.call('SADD', flushing, dest)
    end
  end
end
return moved
