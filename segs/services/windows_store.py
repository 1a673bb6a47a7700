"""Open windows in Redis: one hash per (size, region, window start), one packed field per meter.

Packing a meter's statistics into one field (see segs.domain.windows.PACKED_LAYOUT) costs one HGET
and one HSET per meter and window; a field per statistic cost five times more Redis CPU when
measured (BENCHMARKS.md, "Window layout").

Keys (single Redis instance; the scripts derive key names, so this is not Redis Cluster safe):
- ``segs:win:{size}:{region}:{start_us}``   hash meter -> packed WindowStats
- ``segs:win:open``                         zset of open window keys, scored by window end (µs)
- ``segs:win:flushing``                     set of window hashes moved out for flushing
- ``segs:applied:{batch_id}``               a batch already folded (expires)
- ``segs:meters:last_seen``                 zset meter -> newest reading time (µs)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import redis

from segs.domain.windows import LUA_LAYOUT
from segs.domain.windows import PACKED_LAYOUT
from segs.domain.windows import WindowKey
from segs.domain.windows import WindowStats
from segs.services.pending import PENDING
from segs.services.pending import PENDING_AT

_ENTRY_HEAD = struct.Struct("<HH")

OPEN_WINDOWS = "segs:win:open"
FLUSHING = "segs:win:flushing"
LAST_SEEN = "segs:meters:last_seen"
_FLUSHING_PREFIX = "segs:flushing:"

# KEYS: applied marker, open zset, last-seen zset, pending hash, pending zset, window hashes...
# ARGV: marker ttl, batch id, then per window hash its end (µs) and whether it is 1-minute,
#       then one binary blob of entries: [u16 window index][u16 meter length][meter][stats].
# Passing the entries as one blob instead of thousands of arguments cut the client's encoding
# time per batch by an order of magnitude. The marker and the fold happen in one script, so a
# batch is folded exactly once.
_FOLD = f"""
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local fmt = '{LUA_LAYOUT}'
local stats_len = {PACKED_LAYOUT.size}
local windows = #KEYS - 5
for i = 1, windows do
  redis.call('ZADD', KEYS[2], 'NX', ARGV[1 + 2 * i], KEYS[5 + i])
end
local blob = ARGV[3 + 2 * windows]
local pos = 1
local size = #blob
while pos <= size do
  local index, meter, next_pos = struct.unpack('<HHc0', blob, pos)
  local packed = string.sub(blob, next_pos, next_pos + stats_len - 1)
  pos = next_pos + stats_len
  local key = KEYS[5 + index]
  local n, p, lo, hi, e, v, vn, t = struct.unpack(fmt, packed)
  local current = redis.call('HGET', key, meter)
  if current then
    local n2, p2, lo2, hi2, e2, v2, vn2, t2 = struct.unpack(fmt, current)
    if lo2 < lo then lo = lo2 end
    if hi2 > hi then hi = hi2 end
    if t2 > t then t = t2 end
    packed = struct.pack(fmt, n + n2, p + p2, lo, hi, e + e2, v + v2, vn + vn2, t)
  end
  redis.call('HSET', key, meter, packed)
  if ARGV[2 + 2 * index] == '1' then
    redis.call('ZADD', KEYS[3], 'GT', t, meter)
  end
end
return 1
"""

# KEYS: open zset, flushing set. ARGV: cutoff (µs), flush token, max windows.
# Moving a window out is a RENAME, so readings folded a moment later open a fresh hash
# (flushed and merged next time) instead of landing in one being written to PostgreSQL.
_MOVE_DUE = f"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, key in ipairs(due) do
  redis.call('ZREM', KEYS[1], key)
  if redis.call('EXISTS', key) == 1 then
    local dest = '{_FLUSHING_PREFIX}' .. ARGV[2] .. ':' .. key
    redis.call('RENAME', key, dest)
    redis.call('SADD', KEYS[2], dest)
  end
end
return #due
"""


def window_key_name(key: WindowKey) -> str:
    return f"segs:win:{key.size}:{key.region}:{key.start_us}"


def parse_flushing_name(name: str) -> WindowKey:
    """Recover the window from a ``segs:flushing:{token}:segs:win:...`` key name."""
    original = name[len(_FLUSHING_PREFIX) :].split(":", 1)[1]
    head, start = original.rsplit(":", 1)
    _, _, size, region = head.split(":", 3)
    return WindowKey(size, region, int(start))


@dataclass
class WindowStore:
    """Redis operations on open windows."""

    client: redis.Redis

    def __post_init__(self) -> None:
        self._fold = self.client.register_script(_FOLD)
        self._move_due = self.client.register_script(_MOVE_DUE)

    def fold(
        self,
        batch_id: str,
        folded: dict[WindowKey, dict[str, WindowStats]],
        marker_ttl_s: int,
    ) -> bool:
        """Fold a batch's window statistics in, once; False if this batch was folded before.

        Each meter's newest reading time also goes to the last-seen set (from its 1m windows),
        and the batch leaves the pending ledger (segs.services.pending) in the same step.
        """
        # A batch holds at most 1,000 readings, so at most 2,000 windows: a u16 index suffices.
        windows = sorted(folded)
        keys = [f"segs:applied:{batch_id}", OPEN_WINDOWS, LAST_SEEN, PENDING, PENDING_AT]
        keys.extend(window_key_name(window) for window in windows)
        args: list[str | int | bytes] = [marker_ttl_s, batch_id]
        entries: list[bytes] = []
        for index, window in enumerate(windows, start=1):
            args.extend((window.end_us, "1" if window.size == "1m" else "0"))
            for meter_id, stats in folded[window].items():
                meter = meter_id.encode()
                entries.append(_ENTRY_HEAD.pack(index, len(meter)) + meter + stats.pack())
        args.append(b"".join(entries))
        return bool(self._fold(keys=keys, args=args))

    def move_due(self, cutoff_us: int, token: str, limit: int = 1000) -> int:
        """Move windows that ended before *cutoff_us* out of the open set; returns how many."""
        return int(self._move_due(keys=[OPEN_WINDOWS, FLUSHING], args=[cutoff_us, token, limit]))

    def flushing(self) -> list[str]:
        """Window hashes moved out but not yet confirmed in PostgreSQL (including leftovers)."""
        return sorted(name.decode() for name in self.client.smembers(FLUSHING))

    def read(self, name: str) -> dict[str, WindowStats]:
        return {
            meter.decode(): WindowStats.unpack(packed)
            for meter, packed in self.client.hgetall(name).items()
        }

    def forget(self, name: str) -> None:
        """Drop a flushed window hash once PostgreSQL has committed it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(name)
        pipe.srem(FLUSHING, name)
        pipe.execute()

    def open_windows_by_size(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in self.client.zrange(OPEN_WINDOWS, 0, -1):
            size = name.decode().split(":")[2]
            counts[size] = counts.get(size, 0) + 1
        return counts
