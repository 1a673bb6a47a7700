-- Bulk helpers. Each redis.call has a fixed cost, and one call per meter cost more Redis CPU
-- than the work itself when measured; these send a whole batch's fields in chunks instead
-- (chunks keep unpack within Lua's stack limit).
local BULK = 1000

local function hmget_all(key, fields)
  local values = {}
  for i = 1, #fields, BULK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + BULK - 1, #fields)))
    for j = 1, #part do values[#values + 1] = part[j] end
  end
  return values
end

-- command key [option] a1 b1 a2 b2 ..., in chunks of whole pairs
local function call_pairs(command, key, pairs, option)
  for i = 1, #pairs, BULK do
    local last = math.min(i + BULK - 1, #pairs)
    if option then
      redis.call(command, key, option, unpack(pairs, i, last))
    else
      redis.call(command, key, unpack(pairs, i, last))
    end
  end
end
