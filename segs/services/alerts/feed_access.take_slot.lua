--- KEYS: all_slots account_slots
--- ARGV: now lease_end max_streams max_per_account slot
-- Takes a live-feed slot leased until lease_end (ms), after dropping the leases over by now:
-- returns 0 (taken), 1 (the account holds max_per_account already) or 2 (all streams together
-- hold max_streams).
redis.call('ZREMRANGEBYSCORE', all_slots, '-inf', now)
redis.call('ZREMRANGEBYSCORE', account_slots, '-inf', now)
if redis.call('ZCARD', account_slots) >= tonumber(max_per_account) then
  return 1
end
if redis.call('ZCARD', all_slots) >= tonumber(max_streams) then
  return 2
end
redis.call('ZADD', all_slots, lease_end, slot)
redis.call('ZADD', account_slots, lease_end, slot)
redis.call('PEXPIREAT', account_slots, lease_end)
return 0
