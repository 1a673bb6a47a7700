--- KEYS: published streams[...]
--- ARGV: mark_ttl max_length data[...]
-- Adds an event to each stream (data[i] is how streams[i]'s audience sees it), unless the
-- event's published mark exists: a dispatch that runs again must not show it twice. The mark
-- and the events are written in one step. Returns 1 if it published, 0 if it had before.
if not redis.call('SET', published, '1', 'NX', 'EX', mark_ttl) then
  return 0
end
for i = 1, #streams do
  redis.call('XADD', streams[i], 'MAXLEN', '~', max_length, '*', 'data', data[i])
end
return 1
