"""Open windows in Redis: one hash per (size, region, window start), one packed field per meter.

Readings fold into 1-minute windows; a flushed 1-minute window folds into its 15-minute window
(segs.domain.windows.ROLLS_UP_INTO) as it is forgotten.

Packing a meter's statistics into one field (see segs.domain.windows.PACKED_LAYOUT) costs one HGET
and one HSET per meter and window; a field per statistic cost five times more Redis CPU when
measured (BENCHMARKS.md, "Window layout").

Each shard has its own windows (segs.services.shared.keyspace.ShardKeys): a window hash holds the
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
from segs.services.shared.keyspace import ShardKeys
from segs.services.shared.keyspace import all_shard_keys
from segs.services.shared.keyspace import parse_flushing_name
from segs.services.shared.keyspace import parse_window_name
from segs.services.shared.keyspace import shard_keys
from segs.services.shared.lua import BULK
from segs.services.shared.lua import LuaLibrary
from segs.services.shared.lua import LuaScript
from segs.services.shared.lua import run_scripts
from segs.services.spine.detection import DETECT

_METER_HEAD = struct.Struct("<H")
# An entry's window index (u32), then the meter's packed statistics.
_ENTRY_TAIL = struct.Struct("<I" + PACKED_LAYOUT.format.removeprefix("<"))


# Each meter's encoded head (length and id): meters repeat, and encoding showed in the profile.
@lru_cache(maxsize=1 << 20)
def _meter_head(meter_id: str) -> bytes:
    meter = meter_id.encode()
    return _METER_HEAD.pack(len(meter)) + meter


# Redis keeps a hash of short fields and values, up to hash-max-listpack-entries of them (512 by
# default), as one packed list, and each field read or write scans that list. A window hash of a
# few hundred meters (one shard's meters of one region) then cost the fold about twice its Redis
# CPU per reading (BENCHMARKS.md, stop 28). So each window hash also holds this field, which is
# not a meter id ('#' is outside the id rule), with a value longer than hash-max-listpack-value
# (64 bytes by default): Redis keeps such a hash as a hash table from its first write.
TABLE_FIELD = "#table"
TABLE_VALUE = "a value longer than hash-max-listpack-value keeps this hash a hash table"
_TABLE_FIELD_BYTES = TABLE_FIELD.encode()

_MERGE = LuaLibrary(
    __package__,
    "windows_store.merge.lua",
    uses=(BULK,),
    constants={"STATS": LUA_LAYOUT, "TABLE_FIELD": TABLE_FIELD, "TABLE_VALUE": TABLE_VALUE},
)
# Passing the entries as one blob instead of thousands of arguments cut the client's encoding
# time per batch by an order of magnitude. The markers, the fold and the detection happen in one
# script, so each batch is folded and judged exactly once.
_FOLD = LuaScript(
    __package__,
    "windows_store.fold.lua",
    uses=(DETECT, _MERGE),
    constants={"STATS_SIZE": PACKED_LAYOUT.size},
)
_MOVE_DUE = LuaScript(__package__, "windows_store.move_due.lua")
_ROLL_UP = LuaScript(__package__, "windows_store.roll_up.lua", uses=(_MERGE,))


@dataclass(frozen=True, slots=True)
class Judged:
    """What the fold script needs to judge a batch's readings (segs.services.spine.detection)."""

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
        leave the pending ledger (segs.services.spine.pending) in the same step either way.
        """
        names = shard_keys(shard)
        windows = sorted(folded)
        entries: list[bytes] = []
        tail = _ENTRY_TAIL.pack
        for index, window in enumerate(windows, start=1):
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
        reply = _FOLD.call(
            self.client,
            keys={
                "open_windows": names.open_windows,
                "pending": names.pending,
                "pending_at": names.pending_at,
                "states": names.states,
                "deadlines": names.deadlines,
                "downtime": names.downtime,
                "outbox": names.outbox,
                "markers": [names.applied(batch_id) for batch_id in batch_ids],
                "windows": [names.window(window) for window in windows],
            },
            args={
                "marker_ttl": marker_ttl_s,
                "received_at": judged.received_at_us,
                "missed": judged.missed_intervals,
                "relearn": judged.relearn_after,
                "readings": judged.readings,
                "late_cutoff": late.cutoff_us,
                "late_due": late.due_if_late(READING_WINDOW),
                "entries": b"".join(entries),
                "batch_ids": batch_ids,
                "window_ends": [window.end_us for window in windows],
            },
        )
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
            _MOVE_DUE.prepare(
                keys={"open_windows": names.open_windows, "flushing": names.flushing},
                args={
                    "cutoff": cutoff_us,
                    "limit": limit,
                    "window_prefix": names.window_prefix(size),
                    "flushing_prefix": names.flushing_prefix(token, size),
                },
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
            if meter != _TABLE_FIELD_BYTES
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
        _ROLL_UP.call(
            self.client,
            keys={
                "flushed": name,
                "flushing": names.flushing,
                "larger": names.window(target),
                "open_windows": names.open_windows,
            },
            args={"larger_due": late.rollup_due(source, target)},
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
