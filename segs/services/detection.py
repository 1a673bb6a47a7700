"""Per-meter detection state in Redis: anomaly baselines and the silent-meter deadlines.

Keys (any worker of any shard reads and writes the same state, and it survives restarts):
- ``segs:detect:meter:{meter_id}``  string: the meter's MeterState (segs.domain.alerts)
- ``segs:detect:deadlines``         zset "{region}\\n{meter_id}" -> when it counts as silent (s)
- ``segs:detect:silent``            set of the same members, already reported silent

A deadline counts from when the API accepted the meter's last reading, and the sweep compares it
with the ingestion watermark, not the clock: the acceptance time of the oldest batch still
waiting in a queue (the pending ledger, segs.services.pending). Every reading accepted before
the watermark has been processed, so a meter past its deadline really sent nothing; when the
pipeline lags behind, the sweep waits for it instead of calling every meter silent.

A batch updates its meters' states in one optimistic transaction (WATCH the state keys, read,
judge in Python, MULTI/EXEC the new states), so two batches of one meter racing on two workers
cannot both advance the baseline from the same old value: the loser re-reads and judges again.
A reading no newer than the meter's last one changes nothing (segs.domain.alerts.observe), so a
redelivered batch does not count its readings twice.

The sweep pops due deadlines with one script (ZRANGEBYSCORE + ZREM + SADD), so it never scans
all keys and two sweeps never report the same meter twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from segs.domain import alerts
from segs.domain.alerts import Finding
from segs.domain.alerts import MeterState
from segs.domain.readings import MICRO
from segs.domain.readings import ROW_METER
from segs.domain.readings import ROW_POWER
from segs.domain.readings import ROW_REGION
from segs.domain.readings import ROW_TS
from segs.domain.readings import ReadingRow
from segs.services.pending import PENDING_AT

STATE_PREFIX = "segs:detect:meter:"
WATERMARK_MARGIN_S = 2.0
DEADLINES = "segs:detect:deadlines"
SILENT = "segs:detect:silent"

# KEYS: deadlines zset, silent set. ARGV: now (s), max members.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('SADD', KEYS[2], member)
end
return due
"""


@dataclass(frozen=True, slots=True)
class MeterFinding:
    """What detection found for one meter, with the reading time it was found at."""

    meter_id: str
    region: str
    finding: Finding
    ts_us: int


@dataclass(frozen=True, slots=True)
class SilentMeter:
    meter_id: str
    region: str
    last_ts_us: int | None


def _member(region: str, meter_id: str) -> str:
    return f"{region}\n{meter_id}"


class DetectionStore:
    """Judge readings against their meters' shared state; find meters gone silent."""

    def __init__(self, client: redis.Redis, missed_intervals: int) -> None:
        self._redis = client
        self._missed_intervals = missed_intervals
        self._pop_due = client.register_script(_POP_DUE)

    def observe(self, rows: list[ReadingRow], received_at_us: int) -> list[MeterFinding]:
        """Fold newly stored readings (accepted at *received_at_us*) into their meters' states;
        return what they reveal."""
        by_meter: dict[str, list[ReadingRow]] = {}
        for row in rows:
            by_meter.setdefault(row[ROW_METER], []).append(row)
        meters = list(by_meter)
        keys = [STATE_PREFIX + meter for meter in meters]
        members = [_member(by_meter[meter][-1][ROW_REGION], meter) for meter in meters]
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*keys, SILENT)
                    # In WATCH mode a pipeline runs commands at once and returns their replies.
                    stored = cast(list[bytes | None], pipe.mget(keys))
                    was_silent = cast(list[int], pipe.smismember(SILENT, members))
                    findings, states, deadlines = self._judge(by_meter, stored, received_at_us)
                    resumed = [
                        member for member, silent in zip(members, was_silent, strict=True) if silent
                    ]
                    pipe.multi()
                    if states:
                        pipe.mset(states)
                    if deadlines:
                        pipe.zadd(DEADLINES, deadlines)
                    if resumed:
                        pipe.srem(SILENT, *resumed)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        for member in resumed:
            region, meter_id = member.split("\n", 1)
            last_ts = by_meter[meter_id][-1][ROW_TS]
            findings.append(
                MeterFinding(meter_id, region, alerts.Clear(alerts.METER_OUTAGE), last_ts)
            )
        return findings

    def _judge(
        self, by_meter: dict[str, list[ReadingRow]], stored: list[bytes | None], received_at_us: int
    ) -> tuple[list[MeterFinding], dict[str | bytes, str], dict[str | bytes, float]]:
        findings: list[MeterFinding] = []
        states: dict[str | bytes, str] = {}
        deadlines: dict[str | bytes, float] = {}
        for (meter, rows), raw in zip(by_meter.items(), stored, strict=True):
            before = MeterState.decode(raw.decode()) if raw is not None else None
            state = before
            for row in sorted(rows, key=lambda item: item[ROW_TS]):
                state, found = alerts.observe(state, row[ROW_TS], row[ROW_POWER])
                findings.extend(
                    MeterFinding(meter, row[ROW_REGION], finding, row[ROW_TS]) for finding in found
                )
            if state is None or state == before:
                continue
            states[STATE_PREFIX + meter] = state.encode()
            deadline = alerts.silent_deadline_us(state, self._missed_intervals, received_at_us)
            if deadline is not None:
                deadlines[_member(rows[-1][ROW_REGION], meter)] = deadline / MICRO
        return findings, states, deadlines

    def watermark(self, now_s: float) -> float:
        """Before this instant, every accepted reading has been processed (see above)."""
        oldest = self._redis.zrange(PENDING_AT, 0, 0, withscores=True)
        if not oldest:
            return now_s
        # A small margin covers a batch between its fold (which settles it) and its detection.
        return min(now_s, float(oldest[0][1]) - WATERMARK_MARGIN_S)

    def pop_silent(self, now_s: float, limit: int = 1000) -> list[SilentMeter]:
        """Meters whose deadline passed by *now_s*, each reported once until it reports again."""
        members = [
            member.decode()
            for member in self._pop_due(keys=[DEADLINES, SILENT], args=[now_s, limit])
        ]
        if not members:
            return []
        pairs = [member.split("\n", 1) for member in members]
        stored = self._redis.mget([STATE_PREFIX + meter for _, meter in pairs])
        return [
            SilentMeter(
                meter,
                region,
                MeterState.decode(raw.decode()).last_ts_us if raw is not None else None,
            )
            for (region, meter), raw in zip(pairs, stored, strict=True)
        ]

    def unpop(self, silent: list[SilentMeter], now_s: float) -> None:
        """Put meters back for the next sweep (their alert could not be stored)."""
        with self._redis.pipeline() as pipe:
            for meter in silent:
                member = _member(meter.region, meter.meter_id)
                pipe.srem(SILENT, member)
                pipe.zadd(DEADLINES, {member: now_s}, nx=True)
            pipe.execute()
