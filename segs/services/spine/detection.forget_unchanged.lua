--- KEYS: states
--- ARGV: read[...]
-- read: meter, packed state, meter, packed state... Deletes each meter's state only if it is
-- still the one given: a reading since then keeps the meter. Returns how many it deleted.
local forgotten = 0
for i = 1, #read, 2 do
  if redis.call('HGET', states, read[i]) == read[i + 1] then
    redis.call('HDEL', states, read[i])
    forgotten = forgotten + 1
  end
end
return forgotten
