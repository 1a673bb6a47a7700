--- KEYS: first_bucket
--- ARGV: marks ttl prefix
-- Runs once per shard of a request (a sectioned script). marks is one blob of
-- [u16 meter length][meter][i64 ts µs]; each mark's field is its slice of the blob after the
-- length, kept in the bucket prefix..(ts // BUCKET_SPAN_US). first_bucket is one of those
-- buckets: it routes the call on a cluster, the others are derived here. A bucket expires
-- ttl + its span after its first mark. The reply is one string with a '1' (new) or '0' (seen
-- before) per mark: 500 separate integers and arguments cost the API more than a request's
-- other work.
local expire_after = tonumber(ttl) + BUCKET_SPAN_S
local buckets, order, where = {}, {}, {}
local pos, size = 1, #marks
local last_ts, bucket
while pos <= size do
  local meter, ts, next_pos = struct.unpack('<Hc0i8', marks, pos)
  if ts ~= last_ts then
    bucket = prefix .. string.format('%d', math.floor(ts / BUCKET_SPAN_US))
    last_ts = ts
  end
  local fields = buckets[bucket]
  if not fields then
    fields = {}
    buckets[bucket] = fields
    order[#order + 1] = bucket
  end
  fields[#fields + 1] = string.sub(marks, pos + 2, next_pos - 1)
  where[#where + 1] = {fields, #fields}
  pos = next_pos
end
local seen = {}
for _, name in ipairs(order) do
  local fields = buckets[name]
  local stored = hmget_all(name, fields)
  local new = {}
  for i = 1, #fields do
    if not stored[i] then
      new[#new + 1] = fields[i]
      new[#new + 1] = '1'
    end
  end
  seen[fields] = stored
  if #new > 0 then
    call_pairs('HSET', name, new)
    redis.call('EXPIRE', name, expire_after, 'NX')
  end
end
local flags = {}
for i = 1, #where do
  if seen[where[i][1]][where[i][2]] then flags[i] = '0' else flags[i] = '1' end
end
return table.concat(flags)
