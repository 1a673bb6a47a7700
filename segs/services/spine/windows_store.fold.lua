--- KEYS: open_windows pending pending_at states deadlines downtime outbox markers[batches] windows[...]
--- ARGV: marker_ttl batches received_at missed relearn readings late_cutoff late_due entries batch_ids[batches] window_ends[...]
-- Folds a group of one shard's batches into its window hashes and judges their readings, once.
-- markers are the batches' applied marks. entries is one blob, grouped by window:
-- [u16 meter length][meter][u32 window index][packed statistics], the index 1-based into
-- windows. If a batch of the group was folded before, nothing is folded: the reply is
-- {0, its ids...}, and the caller folds the group again without them. Otherwise the reply is
-- {1, packed findings}, the findings also kept in the outbox under the first batch's id until
-- they are stored. A batch leaves the pending ledger only here, in the step that folds it or
-- finds it folded.
local folded_before = {}
for i = 1, batches do
  if redis.call('EXISTS', markers[i]) == 1 then
    folded_before[#folded_before + 1] = batch_ids[i]
  end
end
if #folded_before > 0 then
  redis.call('HDEL', pending, unpack(folded_before))
  redis.call('ZREM', pending_at, unpack(folded_before))
  return {0, unpack(folded_before)}
end
for i = 1, batches do
  redis.call('HDEL', pending, batch_ids[i])
  redis.call('ZREM', pending_at, batch_ids[i])
  redis.call('SET', markers[i], '1', 'EX', marker_ttl)
end
-- A window that ended before the cutoff is late: it is held until late_due.
local cutoff = tonumber(late_cutoff)
for i = 1, #windows do
  local due = window_ends[i]
  if tonumber(due) <= cutoff then due = late_due end
  redis.call('ZADD', open_windows, 'NX', due, windows[i])
end
local pos, size = 1, #entries
local window, meters, packs = nil, {}, {}
local function fold_window()
  if window then merge_all(windows[window], meters, packs) end
  meters, packs = {}, {}
end
while pos <= size do
  local meter, index, next_pos = struct.unpack('<Hc0I', entries, pos)
  pos = next_pos + STATS_SIZE
  if index ~= window then
    fold_window()
    window = index
  end
  meters[#meters + 1] = meter
  packs[#packs + 1] = string.sub(entries, next_pos, pos - 1)
end
fold_window()
local found = detect({states, deadlines, downtime}, readings, tonumber(received_at),
                     tonumber(missed), tonumber(relearn))
if #found > 0 then redis.call('HSET', outbox, batch_ids[1], found) end
return {1, found}
