--- KEYS: last_sweep downtime refused_at
--- ARGV: now longest_gap
-- Records a sweep at now (s) and returns the downtime so far (s): the time since the previous
-- sweep counts as downtime when that sweep was longer than longest_gap ago, or when the API
-- refused readings since.
local last = tonumber(redis.call('GET', last_sweep))
local total = tonumber(redis.call('GET', downtime) or '0')
local refused = tonumber(redis.call('GET', refused_at) or '-1')
local at = tonumber(now)
if last and at > last and (at - last > tonumber(longest_gap) or refused >= last) then
  total = total + (at - last)
  redis.call('SET', downtime, tostring(total))
end
redis.call('SET', last_sweep, now)
return tostring(total)
