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

Time the pipeline was down does not count towards a silence: when a sweep finds the previous
one longer ago than ``sweep_gap_s`` (beat or the workers were stopped), or the API refused
readings (503) since then, the time since the previous sweep is added to
``segs:detect:downtime`` (a meter whose reading was turned away is not silent). Every deadline
is stored minus the downtime at its writing and judged against the watermark minus the downtime
now. So after a restart, or a spell of load shedding, each meter gets back the time it had left
instead of the whole fleet being called silent at once, and the shift costs one key whatever the
number of meters.
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
LAST_SWEEP = "segs:detect:last-sweep"
DOWNTIME = "segs:detect:downtime"
REFUSED_AT = "segs:ingest:refused-at"
_REFUSED_AT_TTL_S = 86_400

# KEYS: last sweep, downtime, last refusal. ARGV: now (s), longest normal gap between sweeps (s).
# Returns the downtime so far (s), counting the time since the previous sweep when that was too
# long ago or the API refused readings meanwhile.
_SWEEP_CLOCK = """
local last = tonumber(redis.call('GET', KEYS[1]))
local downtime = tonumber(redis.call('GET', KEYS[2]) or '0')
local refused = tonumber(redis.call('GET', KEYS[3]) or '-1')
local now = tonumber(ARGV[1])
if last and now > last and (now - last > tonumber(ARGV[2]) or refused >= last) then
  downtime = downtime + (now - last)
  redis.call('SET', KEYS[2], tostring(downtime))
end
redis.call('SET', KEYS[1], ARGV[1])
return tostring(downtime)
"""

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

    def __init__(self, client: redis.Redis, missed_intervals: int, sweep_gap_s: float) -> None:
        self._redis = client
        self._missed_intervals = missed_intervals
        self._sweep_gap_s = sweep_gap_s
        self._pop_due = client.register_script(_POP_DUE)
        self._sweep_clock = client.register_script(_SWEEP_CLOCK)

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
                    *stored, downtime = cast(list[bytes | None], pipe.mget([*keys, DOWNTIME]))
                    was_silent = cast(list[int], pipe.smismember(SILENT, members))
                    findings, states, deadlines = self._judge(
                        by_meter, stored, received_at_us, float(downtime or 0)
                    )
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
        self,
        by_meter: dict[str, list[ReadingRow]],
        stored: list[bytes | None],
        received_at_us: int,
        downtime_s: float,
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
                deadlines[_member(rows[-1][ROW_REGION], meter)] = deadline / MICRO - downtime_s
        return findings, states, deadlines

    def sweep_threshold(self, now_s: float) -> float:
        """The score up to which stored deadlines are due now: the watermark less the downtime.
        Call it once per sweep: it also records the sweep (see the module's docstring)."""
        downtime = float(
            self._sweep_clock(
                keys=[LAST_SWEEP, DOWNTIME, REFUSED_AT], args=[now_s, self._sweep_gap_s]
            )
        )
        return self.watermark(now_s) - downtime

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

    def unpop(self, silent: list[SilentMeter], due_s: float) -> None:
        """Put meters back for the next sweep (their alert could not be stored), due at *due_s*
        (a threshold from sweep_threshold)."""
        with self._redis.pipeline() as pipe:
            for meter in silent:
                member = _member(meter.region, meter.meter_id)
                pipe.srem(SILENT, member)
                pipe.zadd(DEADLINES, {member: due_s}, nx=True)
            pipe.execute()


def record_refusal(client: redis.Redis, now_s: float) -> None:
    """Note that the API turned readings away (503): the next sweep does not count the time since
    the previous one as silence."""
    client.set(REFUSED_AT, repr(now_s), ex=_REFUSED_AT_TTL_S)
