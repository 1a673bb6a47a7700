--- KEYS: flushed flushing larger open_windows
--- ARGV: larger_due
-- Folds every meter of a flushed window into the larger window it rolls up into, opening that
-- one (due at larger_due) if needed, and deletes the flushed one, in one step: a flush that
-- dies before this step repeats it whole, one that dies after finds nothing left to do, so
-- each window is rolled up exactly once. Returns how many meters it folded.
local entries = redis.call('HGETALL', flushed)
local meters, packs = {}, {}
for i = 1, #entries, 2 do
  if entries[i] ~= TABLE_FIELD then
    meters[#meters + 1] = entries[i]
    packs[#packs + 1] = entries[i + 1]
  end
end
if #meters > 0 then
  merge_all(larger, meters, packs)
  redis.call('ZADD', open_windows, 'NX', larger_due, larger)
end
redis.call('DEL', flushed)
redis.call('SREM', flushing, flushed)
return #meters
