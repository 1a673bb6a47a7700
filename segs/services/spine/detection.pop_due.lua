--- KEYS: deadlines states
--- ARGV: now limit
-- Takes up to limit meters whose silence deadline passed by now (s) out of the deadlines and
-- marks each one's state silent (so its next reading clears the alert). Returns the members
-- taken, each "region\nmeter".
local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  redis.call('ZREM', deadlines, member)
  local meter = string.sub(member, string.find(member, '\n', 1, true) + 1)
  local raw = redis.call('HGET', states, meter)
  if raw then
    local a, b, c, d, e, f = struct.unpack(STATE, raw)
    redis.call('HSET', states, meter, struct.pack(STATE, a, b, c, d, e, f, 1))
  end
end
return due
