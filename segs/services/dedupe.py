"""Short-lived Redis marks that answer recent duplicates at the API.

They are only a fast path: the (meter_id, ts) key of raw_readings is the authority, checked by
the worker for every reading whatever its age, so a duplicate that outlives its mark is still
never counted twice (it is then reported by the ``archive`` stage of the duplicate metric).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import redis

from segs.services.keyspace import shard_keys
from segs.services.lua import BULK_LUA
from segs.services.lua import per_section
from segs.services.lua import run_sections

# Marks live in hashes, one per 10 s of reading time ("buckets"), with the meter id and the
# timestamp as the field: per bucket, one HMGET finds the marks already there and one HSET sets
# the new ones, where a key per mark took one SET per reading and an expiry per key, about twice
# the Redis CPU when measured. A bucket expires as a whole, SEGS_DEDUPE_MARK_TTL_S after its
# first mark (plus its own span), so a mark lives at least the TTL.
# Each shard has its own buckets (segs.services.keyspace.ShardKeys.dedupe_prefix), so a call
# marks keys of one hash tag.
BUCKET_SPAN_US = 10_000_000

# One round trip for the whole batch, a section per shard (segs.services.lua.per_section). A
# section's KEYS[1] is one of its buckets (it routes the call on a cluster; the buckets are
# derived here); its ARGV: the marks, TTL (s), the shard's bucket prefix. The marks arrive as
# one blob of length-prefixed meter ids and timestamps (each mark's field is its slice of the
# blob), and the answer is one string of '1' (new) and '0' (seen): a reply of 500 separate
# integers and 500 separate arguments cost the API more CPU than the rest of a request.
_MARK = BULK_LUA + per_section(
    f"""
local blob, ttl, prefix = ARGV[1], tonumber(ARGV[2]) + {BUCKET_SPAN_US // 1_000_000}, ARGV[3]
local buckets, order, where = {{}}, {{}}, {{}}
local pos, size = 1, #blob
local last_ts, bucket
while pos <= size do
  local meter, ts, next_pos = struct.unpack('<Hc0i8', blob, pos)
  if ts ~= last_ts then
    bucket = prefix .. string.format('%d', math.floor(ts / {BUCKET_SPAN_US}))
    last_ts = ts
  end
  local fields = buckets[bucket]
  if not fields then
    fields = {{}}
    buckets[bucket] = fields
    order[#order + 1] = bucket
  end
  fields[#fields + 1] = string.sub(blob, pos + 2, next_pos - 1)
  where[#where + 1] = {{fields, #fields}}
  pos = next_pos
end
local seen = {{}}
for _, name in ipairs(order) do
  local fields = buckets[name]
  local stored = hmget_all(name, fields)
  local new = {{}}
  for i = 1, #fields do
    if not stored[i] then
      new[#new + 1] = fields[i]
      new[#new + 1] = '1'
    end
  end
  seen[fields] = stored
  if #new > 0 then
    call_pairs('HSET', name, new)
    redis.call('EXPIRE', name, ttl, 'NX')
  end
end
local flags = {{}}
for i = 1, #where do
  if seen[where[i][1]][where[i][2]] then flags[i] = '0' else flags[i] = '1' end
end
return table.concat(flags)
"""
)

_KEY_HEAD = struct.Struct("<H")
_TS = struct.Struct("<q")


def mark_of(shard: int, meter_id: str, ts_us: int) -> tuple[str, bytes]:
    """The bucket and the field that hold the mark of (meter_id, ts_us), a meter of *shard*."""
    bucket = f"{shard_keys(shard).dedupe_prefix}{ts_us // BUCKET_SPAN_US}"
    return bucket, meter_id.encode() + _TS.pack(ts_us)


def _pack_keys(keys: list[tuple[str, int]]) -> bytes:
    head, ts = _KEY_HEAD.pack, _TS.pack
    return b"".join(
        [
            head(len(meter)) + meter + ts(ts_us)
            for meter, ts_us in ((meter_id.encode(), ts_us) for meter_id, ts_us in keys)
        ]
    )


@dataclass
class RedisDedupeMarks:
    client: redis.Redis
    ttl_s: int

    def __post_init__(self) -> None:
        self._mark = self.client.register_script(_MARK)

    def mark_new(self, keys: dict[int, list[tuple[str, int]]]) -> dict[int, list[bool]]:
        """Mark each key (unique within the call), given by shard; whether each was new, by
        shard. One round trip (one per node of a cluster)."""
        shards = [shard for shard, listed in keys.items() if listed]
        sections = [
            (
                [mark_of(shard, *keys[shard][0])[0]],
                [_pack_keys(keys[shard]), self.ttl_s, shard_keys(shard).dedupe_prefix],
            )
            for shard in shards
        ]
        marked: dict[int, list[bool]] = {shard: [] for shard in keys if shard not in shards}
        for shard, flags in zip(
            shards, run_sections(self.client, self._mark, sections), strict=True
        ):
            if b"0" not in flags:  # the usual answer: nothing seen before
                marked[shard] = [True] * len(keys[shard])
            else:
                marked[shard] = [flag == ord("1") for flag in flags]
        return marked

    def release(self, keys: dict[int, list[tuple[str, int]]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for shard, listed in keys.items():
            for meter_id, ts_us in listed:
                pipe.hdel(*mark_of(shard, meter_id, ts_us))
        pipe.execute()
