"""Short-lived Redis marks that answer recent duplicates at the API.

They are only a fast path: the (meter_id, ts) key of raw_readings is the authority, checked by
the worker for every reading whatever its age, so a duplicate that outlives its mark is still
never counted twice (it is then reported by the ``archive`` stage of the duplicate metric).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

# One round trip for the whole batch: SET NX EX each key, report which were new.
_MARK = """
local fresh = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) then fresh[i] = 1 else fresh[i] = 0 end
end
return fresh
"""


def mark_name(meter_id: str, ts_us: int) -> str:
    return f"segs:dd:{meter_id}:{ts_us}"


@dataclass
class RedisDedupeMarks:
    client: redis.Redis
    ttl_s: int

    def __post_init__(self) -> None:
        self._mark = self.client.register_script(_MARK)

    def mark_new(self, keys: list[tuple[str, int]]) -> list[bool]:
        if not keys:
            return []
        names = [mark_name(meter_id, ts_us) for meter_id, ts_us in keys]
        return [flag == 1 for flag in self._mark(keys=names, args=[self.ttl_s])]

    def release(self, keys: list[tuple[str, int]]) -> None:
        if keys:
            self.client.delete(*(mark_name(meter_id, ts_us) for meter_id, ts_us in keys))
