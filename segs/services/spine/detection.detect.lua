-- detect(keys, readings, received, missed, relearn) judges a batch's packed readings
-- ([u16][meter][u16][region][i64 ts µs][i64 power µkW], sorted by meter, then time) against
-- each meter's stored state, as segs.domain.alerts.observe does. keys are a shard's
-- {states, deadlines, downtime}. It stores the new states and the silent-meter deadlines
-- (received + missed intervals, less the downtime so far) and returns the findings packed as one
-- string (layout FINDING). It reads and writes all states in bulk.

local function judge(baseline, power)
  if power < OUTAGE_BELOW and baseline > OUTAGE_ABOVE then return OUTAGE end
  local base = baseline
  if base == 0 then base = FLOOR end
  if power > 2 * base then return SPIKE end
  if 2 * power < base then return DROP end
  return 0
end

local function detect(keys, readings, received, missed, relearn)
  local downtime = tonumber(redis.call('GET', keys[3]) or '0')
  local meters, regions, times, powers = {}, {}, {}, {}
  local unique = {}
  local pos, size = 1, #readings
  while pos <= size do
    local m, r, ts, power, next_pos = struct.unpack('<Hc0Hc0i8i8', readings, pos)
    pos = next_pos
    local n = #meters + 1
    meters[n], regions[n], times[n], powers[n] = m, r, ts, power
    if m ~= unique[#unique] then unique[#unique + 1] = m end
  end
  if #unique == 0 then return '' end
  local stored = hmget_all(keys[1], unique)
  local found, states, deadlines = {}, {}, {}
  local meter, region, s, changed
  local k = 0
  local function emit(ts, power, baseline, kind, code)
    found[#found + 1] = struct.pack(FINDING, #meter, meter, #region, region, ts, power,
                                    baseline, kind, code)
  end
  local function store()
    if not changed then return end
    states[#states + 1] = meter
    states[#states + 1] = struct.pack(STATE, s[1], s[2], s[3], s[4], s[5], s[6], s[7])
    if s[4] > 0 then
      deadlines[#deadlines + 1] = (received + missed * s[4]) / MICRO - downtime
      deadlines[#deadlines + 1] = region .. '\n' .. meter
    end
  end
  for i = 1, #meters do
    local ts, power = times[i], powers[i]
    if meters[i] ~= meter then
      if meter then store() end
      k = k + 1
      meter, region, changed = meters[i], regions[i], false
      local raw = stored[k]
      s = nil
      if raw then
        s = {struct.unpack(STATE, raw)}
        if s[7] == 1 then  -- reported silent by a sweep, and reporting again
          emit(ts, power, 0, CLEAR, SILENT)
          s[7] = 0
          changed = true
        end
      end
    end
    if not s then
      s = {1, power, ts, 0, 0, 0, 0}
      changed = true
    elseif ts > s[3] then
      changed = true
      s[4] = ts - s[3]
      s[3] = ts
      if s[1] < MIN_SAMPLES then
        s[2] = math.floor((4 * s[2] + power + 2) / 5)
      else
        local kind = judge(s[2], power)
        if kind == 0 then
          if s[5] ~= 0 then emit(ts, power, s[2], CLEAR, s[5]) end
          s[2] = math.floor((4 * s[2] + power + 2) / 5)
          s[5], s[6] = 0, 0
        else
          if s[5] ~= 0 and s[5] ~= kind then emit(ts, power, s[2], CLEAR, s[5]) end
          local streak = 1
          if s[5] == kind then streak = s[6] + 1 end
          if kind ~= OUTAGE and relearn > 0 and streak >= relearn then
            if s[5] == kind then emit(ts, power, s[2], CLEAR, kind) end
            s[2], s[5], s[6] = power, 0, 0
          else
            emit(ts, power, s[2], RAISE, kind)
            s[5], s[6] = kind, streak
          end
        end
      end
      s[1] = s[1] + 1
    end
  end
  store()
  if #states > 0 then call_pairs('HSET', keys[1], states) end
  if #deadlines > 0 then call_pairs('ZADD', keys[2], deadlines) end
  return table.concat(found)
end
