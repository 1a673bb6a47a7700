"""Short-lived Redis marks that answer recent duplicates at the API.

They are only a fast path: the (meter_id, ts) key of raw_readings is the authority, checked by
the worker for every reading whatever its age, so a duplicate that outlives its mark is still
never counted twice (it is then reported by the ``archive`` stage of the duplicate metric).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import redis

# One round trip for the whole batch. The keys arrive as one blob of length-prefixed meter ids
# and timestamps, and the answer is one string of '1' (new) and '0' (seen): a reply of 500
# separate integers and 500 separate arguments cost the API more CPU than the rest of a request.
_MARK = """
local blob, ttl = ARGV[1], ARGV[2]
local flags = {}
local pos, size = 1, #blob
while pos <= size do
  local meter, ts
  meter, ts, pos = struct.unpack('<Hc0i8', blob, pos)
  local key = 'segs:dd:' .. meter .. ':' .. string.format('%d', ts)
  if redis.call('SET', key, '1', 'NX', 'EX', ttl) then
    flags[#flags + 1] = '1'
  else
    flags[#flags + 1] = '0'
  end
end
return table.concat(flags)
"""

_KEY_HEAD = struct.Struct("<H")
_TS = struct.Struct("<q")


def mark_name(meter_id: str, ts_us: int) -> str:
    return f"segs:dd:{meter_id}:{ts_us}"


def _pack_keys(keys: list[tuple[str, int]]) -> bytes:
    parts = []
    for meter_id, ts_us in keys:
        meter = meter_id.encode()
        parts.append(_KEY_HEAD.pack(len(meter)) + meter + _TS.pack(ts_us))
    return b"".join(parts)


@dataclass
class RedisDedupeMarks:
    client: redis.Redis
    ttl_s: int

    def __post_init__(self) -> None:
        self._mark = self.client.register_script(_MARK)

    def mark_new(self, keys: list[tuple[str, int]]) -> list[bool]:
        if not keys:
            return []
        flags = self._mark(keys=[], args=[_pack_keys(keys), self.ttl_s])
        return [flag == ord("1") for flag in flags]

    def release(self, keys: list[tuple[str, int]]) -> None:
        if keys:
            self.client.delete(*(mark_name(meter_id, ts_us) for meter_id, ts_us in keys))
