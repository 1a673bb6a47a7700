--- KEYS: claim
--- ARGV: token
-- Deletes a delivery's claim only if it still holds token: once it expired, another copy may
-- hold it. Returns 1 if it deleted the claim.
if redis.call('GET', claim) == token then
  return redis.call('DEL', claim)
end
return 0
