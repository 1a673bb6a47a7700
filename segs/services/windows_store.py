"""Open windows in Redis: one hash per (size, region, window start), one packed field per meter.

Readings fold into 1-minute windows; a flushed 1-minute window folds into its 15-minute window
(segs.domain.windows.ROLLS_UP_INTO) as it is forgotten.

Packing a meter's statistics into one field (see segs.domain.windows.PACKED_LAYOUT) costs one HGET
and one HSET per meter and window; a field per statistic cost five times more Redis CPU when
measured (BENCHMARKS.md, "Window layout").

Each shard has its own windows (segs.services.keyspace.ShardKeys): a window hash holds the
statistics of the shard's meters only, so the fold of a shard's batches touches one hash tag
(one Redis Cluster slot), and the flush merges a window's hashes of all shards. Per shard:
- ``segs:{s<k>}:win:<size>:<region>:<start_us>``   hash meter -> packed WindowStats
- ``segs:{s<k>}:win:open``                         zset of open window hashes, scored by when due
- ``segs:{s<k>}:win:flushing``                     set of window hashes moved out for flushing
- ``segs:{s<k>}:applied:<batch_id>``               a batch already folded (expires)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

import redis

from segs.domain.readings import MICRO
from segs.domain.windows import LUA_LAYOUT
from segs.domain.windows import PACKED_LAYOUT
from segs.domain.windows import READING_WINDOW
from segs.domain.windows import WINDOW_SIZES
from segs.domain.windows import WindowKey
from segs.domain.windows import WindowStats
from segs.domain.windows import rollup_target
from segs.services.detection import DETECT_LUA
from segs.services.keyspace import ShardKeys
from segs.services.keyspace import all_shard_keys
from segs.services.keyspace import parse_flushing_name
from segs.services.keyspace import parse_window_name
from segs.services.keyspace import shard_keys
from segs.services.lua import BULK_LUA
from segs.services.lua import run_scripts

_METER_HEAD = struct.Struct("<H")
# An entry's window index (u32), then the meter's packed statistics.
_ENTRY_TAIL = struct.Struct("<I" + PACKED_LAYOUT.format.removeprefix("<"))


# Each meter's encoded head (length and id): meters repeat, and encoding showed in the profile.
@lru_cache(maxsize=1 << 20)
def _meter_head(meter_id: str) -> bytes:
    meter = meter_id.encode()
    return _METER_HEAD.pack(len(meter)) + meter


# The fold script's first batch marker (KEYS) and first batch id (ARGV), 1-based.
_FIRST_MARKER_KEY = 8
_FIRST_BATCH_ARG = 9

# Defines merge_all(key, meters, packs): fold each meter's packed statistics into a window hash,
# reading and writing the hash in bulk.
_MERGE_LUA = f"""
local STATS = '{LUA_LAYOUT}'
local function merge_all(key, meters, packs)
  local currents = hmget_all(key, meters)
  local fields = {{}}
  for i = 1, #meters do
    local packed = packs[i]
    local n, p, lo, hi, e, v, vn, t = struct.unpack(STATS, packed)
    local current = currents[i]
    if current then
      local n2, p2, lo2, hi2, e2, v2, vn2, t2 = struct.unpack(STATS, current)
      if lo2 < lo then lo = lo2 end
      if hi2 > hi then hi = hi2 end
      if t2 > t then t = t2 end
      packed = struct.pack(STATS, n + n2, p + p2, lo, hi, e + e2, v + v2, vn + vn2, t)
    end
    fields[#fields + 1] = meters[i]
    fields[#fields + 1] = packed
  end
  call_pairs('HSET', key, fields)
end
"""

# KEYS: open zset, pending hash, pending zset, detection states, silent deadlines, downtime,
#       findings outbox, then each batch's applied marker, then the window hashes.
# ARGV: marker ttl, number of batches, accepted at (µs), missed intervals, relearn after, packed
#       readings (segs.services.detection), the late windows' cutoff and due time (LateWindows),
#       then each batch's id, then each window hash's end
#       (µs), then one binary blob of entries: [u16 meter length][meter][u32 window index][stats].
# Passing the entries as one blob instead of thousands of arguments cut the client's encoding
# time per batch by an order of magnitude. The markers, the fold and the detection happen in one
# script, so each batch is folded and judged exactly once. If a batch of the group was folded
# before, nothing is folded: the script returns {0, its ids...} and the caller folds the group
# again without them. Otherwise it returns {1, packed findings}, the findings also kept in the
# outbox under the first batch's id until stored.
# The entries arrive grouped by window (WindowStore.fold writes them window by window).
_FOLD = (
    DETECT_LUA
    + _MERGE_LUA
    + f"""
local batches = tonumber(ARGV[2])
local first_marker, first_id = {_FIRST_MARKER_KEY}, {_FIRST_BATCH_ARG}
local folded_before = {{}}
for i = 0, batches - 1 do
  if redis.call('EXISTS', KEYS[first_marker + i]) == 1 then
    folded_before[#folded_before + 1] = ARGV[first_id + i]
  end
end
-- A batch leaves the ledger only in the step that folds it (or found it folded).
if #folded_before > 0 then
  redis.call('HDEL', KEYS[2], unpack(folded_before))
  redis.call('ZREM', KEYS[3], unpack(folded_before))
  return {{0, unpack(folded_before)}}
end
for i = 0, batches - 1 do
  local id = ARGV[first_id + i]
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('SET', KEYS[first_marker + i], '1', 'EX', ARGV[1])
end
local stats_len = {PACKED_LAYOUT.size}
local first_window = first_marker + batches
local windows = #KEYS - first_window + 1
local late_cutoff, late_due = tonumber(ARGV[7]), ARGV[8]
for i = 1, windows do
  local due = ARGV[first_id + batches - 1 + i]
  if tonumber(due) <= late_cutoff then due = late_due end
  redis.call('ZADD', KEYS[1], 'NX', due, KEYS[first_window - 1 + i])
end
local blob = ARGV[first_id + batches + windows]
local pos, size = 1, #blob
local window, meters, packs = nil, {{}}, {{}}
local function fold_window()
  if window then merge_all(KEYS[first_window - 1 + window], meters, packs) end
  meters, packs = {{}}, {{}}
end
while pos <= size do
  local meter, index, next_pos = struct.unpack('<Hc0I', blob, pos)
  pos = next_pos + stats_len
  if index ~= window then
    fold_window()
    window = index
  end
  meters[#meters + 1] = meter
  packs[#packs + 1] = string.sub(blob, next_pos, pos - 1)
end
fold_window()
local found = detect({{KEYS[4], KEYS[5], KEYS[6]}}, ARGV[6], tonumber(ARGV[3]),
                     tonumber(ARGV[4]), tonumber(ARGV[5]))
if #found > 0 then redis.call('HSET', KEYS[7], ARGV[first_id], found) end
return {{1, found}}
"""
)

# KEYS: the shard's open zset and flushing set. ARGV: cutoff (µs), max windows, the shard's
# window key prefix of one size (ShardKeys.window up to the size), its flushing prefix with the
# flush token (ShardKeys.flushing_window up to the size).
# Moving a window out is a RENAME, so readings folded a moment later open a fresh hash
# (flushed and merged next time) instead of landing in one being written to PostgreSQL.
# Only windows of the one size move. The names it derives share the shard's hash tag.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local moved = 0
for _, key in ipairs(due) do
  if string.sub(key, 1, #ARGV[3]) == ARGV[3] then
    redis.call('ZREM', KEYS[1], key)
    moved = moved + 1
    if redis.call('EXISTS', key) == 1 then
      local dest = ARGV[4] .. string.sub(key, #ARGV[3] + 1)
      redis.call('RENAME', key, dest)
      redis.call('SADD', KEYS[2], dest)
    end
  end
end
return moved
"""

# KEYS: flushed window hash, flushing set, the larger window's hash, open zset.
# ARGV: when the larger window is due (its end, or LateWindows' due time if it closed already).
# Folds every meter of a flushed window into the larger window and deletes it, in one step: a
# flush that dies before this step repeats it whole, one that dies after finds nothing left to
# do, so each window is rolled up exactly once.
_ROLL_UP = (
    BULK_LUA
    + _MERGE_LUA
    + """
local entries = redis.call('HGETALL', KEYS[1])
local meters, packs = {}, {}
for i = 1, #entries, 2 do
  meters[#meters + 1] = entries[i]
  packs[#packs + 1] = entries[i + 1]
end
if #meters > 0 then
  merge_all(KEYS[3], meters, packs)
  redis.call('ZADD', KEYS[4], 'NX', ARGV[1], KEYS[3])
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
return #entries / 2
"""
)


@dataclass(frozen=True, slots=True)
class Judged:
    """What the fold script needs to judge a batch's readings (segs.services.detection)."""

    readings: bytes  # pack_readings()
    received_at_us: int
    missed_intervals: int
    relearn_after: int


@dataclass(frozen=True, slots=True)
class LateWindows:
    """When a window opened after it closed (late readings) is due. A window ending at or before
    *cutoff_us* (now minus the grace: it would be due already) is held instead, *hold_us* per
    minute of its length, and late readings gather in it meanwhile: with the default 30 s, a
    backfill's 1-minute windows are flushed every 30 s and its 15-minute ones every 7.5 minutes,
    rather than at every flush."""

    cutoff_us: int
    hold_us: int

    @classmethod
    def at(cls, now_us: int, grace_s: int, hold_s: int) -> LateWindows:
        # A window is flushed once its due time plus the grace has passed.
        return cls(now_us - grace_s * MICRO, hold_s * MICRO)

    def due_if_late(self, size: str) -> int:
        """When a window of *size* opened now after its end is due."""
        return self.cutoff_us + self.hold_us * WINDOW_SIZES[size] // 60

    def due(self, window: WindowKey) -> int:
        return window.end_us if window.end_us > self.cutoff_us else self.due_if_late(window.size)

    def rollup_due(self, source: WindowKey, target: WindowKey) -> int:
        """When *target* is due once *source* (flushed now) rolls into it. Only a late source
        (flushed later than its hold after it closed: late readings, a backfill) makes a late
        target: the last minute of a quarter, flushed on time, leaves its quarter on time."""
        source_held_until = source.end_us + self.hold_us * WINDOW_SIZES[source.size] // 60
        return target.end_us if source_held_until >= self.cutoff_us else self.due(target)


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What the fold script did: nothing if *applied_before* names batches folded before,
    else the group is folded and *findings* holds what detection found (packed)."""

    applied_before: set[str]
    findings: bytes


@dataclass
class WindowStore:
    """Redis operations on open windows, for *shards* shards."""

    client: redis.Redis
    shards: int

    def __post_init__(self) -> None:
        self._fold = self.client.register_script(_FOLD)
        self._move_due = self.client.register_script(_MOVE_DUE)
        self._roll_up = self.client.register_script(_ROLL_UP)

    def fold(
        self,
        shard: int,
        batch_ids: list[str],
        folded: dict[WindowKey, dict[str, WindowStats]],
        judged: Judged,
        marker_ttl_s: int,
        late: LateWindows,
    ) -> FoldResult:
        """Fold a group of one shard's batches' window statistics in and judge their readings,
        once.

        Nothing changes if a batch of the group was folded before (see FoldResult). The batches
        leave the pending ledger (segs.services.pending) in the same step either way.
        """
        names = shard_keys(shard)
        windows = sorted(folded)
        keys = [
            names.open_windows,
            names.pending,
            names.pending_at,
            names.states,
            names.deadlines,
            names.downtime,
            names.outbox,
        ]
        keys.extend(names.applied(batch_id) for batch_id in batch_ids)
        keys.extend(names.window(window) for window in windows)
        args: list[str | int | bytes] = [
            marker_ttl_s,
            len(batch_ids),
            judged.received_at_us,
            judged.missed_intervals,
            judged.relearn_after,
            judged.readings,
            late.cutoff_us,
            late.due_if_late(READING_WINDOW),
        ]
        args.extend(batch_ids)
        entries: list[bytes] = []
        tail = _ENTRY_TAIL.pack
        for index, window in enumerate(windows, start=1):
            args.append(window.end_us)
            for meter_id, s in folded[window].items():
                entries.append(_meter_head(meter_id))
                entries.append(
                    tail(
                        index,
                        s.count,
                        s.power_sum,
                        s.power_min,
                        s.power_max,
                        s.energy_sum,
                        s.voltage_sum,
                        s.voltage_count,
                        s.last_ts_us,
                    )
                )
        args.append(b"".join(entries))
        reply = self._fold(keys=keys, args=args)
        if reply[0] == 0:
            return FoldResult({bytes(batch_id).decode() for batch_id in reply[1:]}, b"")
        return FoldResult(set(), bytes(reply[1]))

    def was_folded(self, shard: int, batch_id: str) -> bool:
        """Whether the fold script has applied this batch of *shard* (its mark lives
        SEGS_APPLIED_MARK_TTL_S)."""
        return bool(self.client.exists(shard_keys(shard).applied(batch_id)))

    def move_due(self, size: str, cutoff_us: int, token: str, limit: int = 1000) -> int:
        """Move *size* windows due by *cutoff_us* out of every shard's open set (up to *limit*
        per shard); returns how many."""
        calls = [
            (
                self._move_due,
                [names.open_windows, names.flushing],
                [cutoff_us, limit, names.window_prefix(size), names.flushing_prefix(token, size)],
            )
            for names in self._all()
        ]
        return sum(int(moved) for moved in run_scripts(self.client, calls))

    def flushing(self, size: str) -> dict[WindowKey, list[str]]:
        """*size* window hashes moved out but not yet forgotten (including leftovers of earlier
        flushes), by window: each shard's hash of the window, from each flush that moved one."""
        by_window: dict[WindowKey, list[str]] = {}
        for name in self._flushing_names():
            window = parse_flushing_name(name).window
            if window.size == size:
                by_window.setdefault(window, []).append(name)
        return {window: sorted(by_window[window]) for window in sorted(by_window)}

    def read(self, name: str) -> dict[str, WindowStats]:
        return {
            meter.decode(): WindowStats.unpack(packed)
            for meter, packed in self.client.hgetall(name).items()
        }

    def forget(self, name: str, late: LateWindows) -> None:
        """Drop a flushed window hash once PostgreSQL has committed it, first folding it into
        the larger window it rolls up into (segs.domain.windows.ROLLS_UP_INTO)."""
        flushing = parse_flushing_name(name)
        names = shard_keys(flushing.shard)
        source = flushing.window
        target = rollup_target(source)
        if target is None:
            self.drop(name)
            return
        self._roll_up(
            keys=[name, names.flushing, names.window(target), names.open_windows],
            args=[late.rollup_due(source, target)],
        )

    def drop(self, name: str) -> None:
        """Let go of a window hash being flushed without rolling it up (it is quarantined)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(name)
        pipe.srem(self._flushing_set_of(name), name)
        pipe.execute()

    def restore_flushing(self, name: str, meters: dict[str, WindowStats]) -> None:
        """Put a window back to be flushed under *name*, with these statistics."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(name)
        if meters:
            pipe.hset(name, mapping={meter: stats.pack() for meter, stats in meters.items()})
        pipe.sadd(self._flushing_set_of(name), name)
        pipe.execute()

    def open_windows_by_size(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in self._open_names():
            size = parse_window_name(name).size
            counts[size] = counts.get(size, 0) + 1
        return counts

    def windows_in_redis(self) -> set[WindowKey]:
        """Every window with a hash in Redis, open or being flushed, in any shard."""
        return {parse_window_name(name) for name in self._open_names()} | {
            parse_flushing_name(name).window for name in self._flushing_names()
        }

    def _open_names(self) -> list[str]:
        """Every shard's open window hashes, one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for names in self._all():
            pipe.zrange(names.open_windows, 0, -1)
        return [member.decode() for members in pipe.execute() for member in members]

    def _flushing_names(self) -> list[str]:
        """Every shard's window hashes being flushed, one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for names in self._all():
            pipe.smembers(names.flushing)
        return [member.decode() for members in pipe.execute() for member in members]

    def _all(self) -> list[ShardKeys]:
        return all_shard_keys(self.shards)

    @staticmethod
    def _flushing_set_of(name: str) -> str:
        return shard_keys(parse_flushing_name(name).shard).flushing
