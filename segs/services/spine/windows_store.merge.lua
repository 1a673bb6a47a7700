-- merge_all(key, meters, packs): fold each meter's packed statistics (layout STATS, from
-- segs.domain.windows) into a window hash, reading and writing the hash in bulk. Each write
-- also sets TABLE_FIELD, so Redis keeps the hash as a hash table (see windows_store.py).
local function merge_all(key, meters, packs)
  local currents = hmget_all(key, meters)
  local fields = {TABLE_FIELD, TABLE_VALUE}
  for i = 1, #meters do
    local packed = packs[i]
    local n, p, lo, hi, e, v, vn, t = struct.unpack(STATS, packed)
    local current = currents[i]
    if current then
      local n2, p2, lo2, hi2, e2, v2, vn2, t2 = struct.unpack(STATS, current)
      if lo2 < lo then lo = lo2 end
      if hi2 > hi then hi = hi2 end
      if t2 > t then t = t2 end
      packed = struct.pack(STATS, n + n2, p + p2, lo, hi, e + e2, v + v2, vn + vn2, t)
    end
    fields[#fields + 1] = meters[i]
    fields[#fields + 1] = packed
  end
  call_pairs('HSET', key, fields)
end
