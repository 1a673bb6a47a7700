"""Per-meter detection state in Redis: anomaly baselines and the silent-meter deadlines.

Keys, per shard (segs.services.shared.keyspace.ShardKeys; any worker serving the shard reads and
writes the same state, and it survives restarts):
- ``segs:{s<k>}:detect:state``      hash meter -> packed state (STATE_LAYOUT below)
- ``segs:{s<k>}:detect:deadlines``  zset "<region>\\n<meter_id>" -> when it counts as silent (s)
- ``segs:{s<k>}:detect:outbox``     hash batch id -> findings not yet stored in PostgreSQL
- ``segs:{s<k>}:detect:downtime``   the shard's copy of the downtime (below)

Readings are judged inside the window fold script (segs.services.spine.windows_store; DETECT
below): the fold, the "batch applied" mark, the new states and the batch's findings are one
atomic step. So a batch is judged exactly once however often it runs, and no extra round trip
or optimistic retry is needed when two workers touch the same meter. The findings wait in the
outbox until the worker has stored them (segs.services.alerts.rules) and called
:meth:`DetectionStore.forget_findings`; a task that runs again after a crash or a failed
PostgreSQL write finds them there (:meth:`DetectionStore.unstored_findings`).

The rule itself is specified in Python (segs.domain.alerts.observe); the Lua below implements
the same steps, and tests/integration/test_detection_script.py holds the two to the same states
and findings.

A deadline counts from when the API accepted the meter's last reading, and the sweep compares it
with the ingestion watermark, not the clock: the acceptance time of the oldest batch still
waiting in a queue (segs.services.spine.pending). Every reading accepted before the watermark has
been processed, so a meter past its deadline really sent nothing; when the pipeline lags behind, the
sweep waits for it instead of calling every meter silent.

The sweep pops due deadlines with one script, which also marks the meters' states silent, so it
never scans all keys and two sweeps never report the same meter twice; a silent meter's next
reading clears the mark and resolves its alert.

Time the pipeline was down does not count towards a silence: when a sweep finds the previous
one longer ago than ``sweep_gap_s`` (beat or the workers were stopped), or the API refused
readings (503) since then, the time since the previous sweep is added to the downtime
(``segs:{sweep}:detect:downtime``, a meter whose reading was turned away is not silent), and the
sweep copies it to every shard before it pops deadlines. A fold that reads a shard's copy just
before it is raised stores a deadline a little later than due: a silence is reported late,
never early. Every deadline
is stored minus the downtime at its writing and judged against the watermark minus the downtime
now. So after a restart, or a spell of load shedding, each meter gets back the time it had left
instead of the whole fleet being called silent at once, and the shift costs one key whatever the
number of meters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

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
from segs.domain.sharding import shard_for
from segs.services.shared.keyspace import DOWNTIME
from segs.services.shared.keyspace import LAST_SWEEP
from segs.services.shared.keyspace import REFUSED_AT
from segs.services.shared.keyspace import ShardKeys
from segs.services.shared.keyspace import all_shard_keys
from segs.services.shared.keyspace import shard_keys
from segs.services.shared.lua import BULK
from segs.services.shared.lua import LuaLibrary
from segs.services.shared.lua import LuaScript
from segs.services.shared.lua import run_scripts

WATERMARK_MARGIN_S = 2.0
_REFUSED_AT_TTL_S = 86_400

# samples, baseline (µkW), last reading (µs), interval (µs), open anomaly, streak, silent flag
STATE_LAYOUT = struct.Struct("<iqqqbib")
_STATE_LUA = "<i4i8i8i8i1i4i1"
# The anomaly open on a meter, as stored; a finding's type uses the same codes.
TYPE_CODES: tuple[str | None, ...] = (
    None,
    alerts.POWER_SPIKE,
    alerts.POWER_DROP,
    alerts.POWER_OUTAGE,
    alerts.METER_OUTAGE,
)
_CODE_OF = {name: code for code, name in enumerate(TYPE_CODES)}
_RAISE, _CLEAR = 1, 2

# One reading for the script: meter, region, ts (µs), power (µkW).
_READING_HEAD = struct.Struct("<H")
_READING_TAIL = struct.Struct("<qq")
# One finding from the script: meter, region, ts, power, baseline, kind (raise/clear), type code.
_FINDING_LUA = "<Hc0Hc0i8i8i8BB"
_FINDING_HEAD = struct.Struct("<H")
_FINDING_TAIL = struct.Struct("<qqqBB")

# detect(keys, readings, received_at_us, missed, relearn) for the fold script
# (segs.services.spine.windows_store): the rule of segs.domain.alerts.observe, in Lua.
DETECT = LuaLibrary(
    __package__,
    "detection.detect.lua",
    uses=(BULK,),
    constants={
        "STATE": _STATE_LUA,
        "FINDING": _FINDING_LUA,
        "MICRO": MICRO,
        "MIN_SAMPLES": alerts.MIN_SAMPLES,
        "FLOOR": alerts.FLOOR_BASELINE,
        "OUTAGE_BELOW": alerts.OUTAGE_POWER_BELOW,
        "OUTAGE_ABOVE": alerts.OUTAGE_BASELINE_ABOVE,
        "SPIKE": _CODE_OF[alerts.POWER_SPIKE],
        "DROP": _CODE_OF[alerts.POWER_DROP],
        "OUTAGE": _CODE_OF[alerts.POWER_OUTAGE],
        "SILENT": _CODE_OF[alerts.METER_OUTAGE],
        "RAISE": _RAISE,
        "CLEAR": _CLEAR,
    },
)
_SWEEP_CLOCK = LuaScript(__package__, "detection.sweep_clock.lua")
_POP_DUE = LuaScript(__package__, "detection.pop_due.lua", constants={"STATE": _STATE_LUA})
_FORGET_UNCHANGED = LuaScript(__package__, "detection.forget_unchanged.lua")


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


def _split_member(member: str) -> tuple[str, str]:
    """Region and meter of a deadline's member (see _member)."""
    region, meter_id = member.split("\n", 1)
    return region, meter_id


def _member(region: str, meter_id: str) -> str:
    return f"{region}\n{meter_id}"


def unpack_state(packed: bytes) -> tuple[MeterState, bool]:
    """A stored state, and whether a sweep has reported the meter silent."""
    samples, baseline, last_ts_us, interval_us, anomaly, streak, silent = STATE_LAYOUT.unpack(
        packed
    )
    state = MeterState(samples, baseline, last_ts_us, interval_us, TYPE_CODES[anomaly], streak)
    return state, bool(silent)


# The same meters report again and again, and encoding their heads was a quarter of a
# worker's CPU per reading.
@lru_cache(maxsize=1 << 20)
def _reading_head(meter: str, region: str) -> bytes:
    meter_bytes, region_bytes = meter.encode(), region.encode()
    return (
        _READING_HEAD.pack(len(meter_bytes))
        + meter_bytes
        + _READING_HEAD.pack(len(region_bytes))
        + region_bytes
    )


def pack_readings(rows: list[ReadingRow]) -> bytes:
    """The readings for DETECT: sorted by meter, then time, each meter's readings together."""
    tail = _READING_TAIL.pack
    parts: list[bytes] = []
    for row in sorted(rows, key=itemgetter(ROW_METER, ROW_TS)):
        parts.append(_reading_head(row[ROW_METER], row[ROW_REGION]))
        parts.append(tail(row[ROW_TS], row[ROW_POWER]))
    return b"".join(parts)


def unpack_findings(packed: bytes) -> list[MeterFinding]:
    """DETECT's findings; a raise gets its severity and message from the Python rule."""
    findings: list[MeterFinding] = []
    pos = 0
    while pos < len(packed):
        (meter_len,) = _FINDING_HEAD.unpack_from(packed, pos)
        pos += _FINDING_HEAD.size
        meter = packed[pos : pos + meter_len].decode()
        pos += meter_len
        (region_len,) = _FINDING_HEAD.unpack_from(packed, pos)
        pos += _FINDING_HEAD.size
        region = packed[pos : pos + region_len].decode()
        pos += region_len
        ts_us, power, baseline, kind, code = _FINDING_TAIL.unpack_from(packed, pos)
        pos += _FINDING_TAIL.size
        finding: Finding | None
        if kind == _CLEAR:
            finding = alerts.Clear(str(TYPE_CODES[code]))
        else:
            finding = alerts.judge(baseline, power)
            if finding is None or finding.type != TYPE_CODES[code]:
                raise ValueError(f"detection script and rule disagree on {meter} at {ts_us}")
        findings.append(MeterFinding(meter, region, finding, ts_us))
    return findings


class DetectionStore:
    """The detection state outside the fold, for *shards* shards: stored findings, states,
    meters gone silent."""

    def __init__(self, client: redis.Redis, shards: int, sweep_gap_s: float) -> None:
        self._redis = client
        self._shards = shards
        self._sweep_gap_s = sweep_gap_s

    def unstored_findings(self, shard: int, batch_id: str) -> list[MeterFinding]:
        """Findings of a batch folded earlier and not yet stored (its task ran again)."""
        packed = self._redis.hget(shard_keys(shard).outbox, batch_id)
        return unpack_findings(packed) if packed else []

    def forget_findings(self, shard: int, batch_id: str) -> None:
        """The batch's findings are stored in PostgreSQL."""
        self._redis.hdel(shard_keys(shard).outbox, batch_id)

    def state(self, meter_id: str) -> MeterState | None:
        packed = self._redis.hget(self._keys_of(meter_id).states, meter_id)
        return unpack_state(packed)[0] if packed else None

    def stale_states(
        self, shard: int, last_before_us: int, cursor: int = 0, count: int = 1000
    ) -> tuple[int, dict[str, bytes]]:
        """One step through a shard's states (HSCAN, never a whole-hash read): the next cursor
        (0 at the end) and the states in this step whose last reading is before
        *last_before_us*."""
        cursor, chunk = self._redis.hscan(shard_keys(shard).states, cursor, count=count)
        stale = {}
        for meter, packed in chunk.items():
            state, _ = unpack_state(packed)
            if state.last_ts_us < last_before_us:
                stale[meter.decode()] = packed
        return int(cursor), stale

    def forget_states(self, shard: int, states: dict[str, bytes]) -> int:
        """Delete these states of *shard* (as read by stale_states) unless a reading changed
        them since."""
        if not states:
            return 0
        pairs = [item for meter, packed in states.items() for item in (meter, packed)]
        return int(
            _FORGET_UNCHANGED.call(
                self._redis, keys={"states": shard_keys(shard).states}, args={"read": pairs}
            )
        )

    def sweep_threshold(self, now_s: float) -> float:
        """The score up to which stored deadlines are due now: the watermark less the downtime.
        Call it once per sweep: it also records the sweep (see the module's docstring)."""
        downtime = _SWEEP_CLOCK.call(
            self._redis,
            keys={"last_sweep": LAST_SWEEP, "downtime": DOWNTIME, "refused_at": REFUSED_AT},
            args={"now": now_s, "longest_gap": self._sweep_gap_s},
        )
        pipe = self._redis.pipeline(transaction=False)
        for names in self._all():
            pipe.set(names.downtime, downtime)
        pipe.execute()
        return self.watermark(now_s) - float(downtime)

    def watermark(self, now_s: float) -> float:
        """Before this instant, every accepted reading has been processed (see above)."""
        pipe = self._redis.pipeline(transaction=False)
        for names in self._all():
            pipe.zrange(names.pending_at, 0, 0, withscores=True)
        oldest = [float(first[0][1]) for first in pipe.execute() if first]
        if not oldest:
            return now_s
        # A small margin covers a batch between its publish and its acceptance time.
        return min(now_s, min(oldest) - WATERMARK_MARGIN_S)

    def pop_silent(self, now_s: float, limit: int = 1000) -> list[SilentMeter]:
        """Meters whose deadline passed by *now_s*, each reported once until it reports again
        (up to *limit* per shard)."""
        shards = self._all()
        popped = run_scripts(
            self._redis,
            [
                _POP_DUE.prepare(
                    keys={"deadlines": names.deadlines, "states": names.states},
                    args={"now": now_s, "limit": limit},
                )
                for names in shards
            ],
        )
        pipe = self._redis.pipeline(transaction=False)
        due: list[list[tuple[str, str]]] = []
        for names, members in zip(shards, popped, strict=True):
            pairs = [_split_member(member.decode()) for member in members]
            due.append(pairs)
            if pairs:
                pipe.hmget(names.states, [meter for _, meter in pairs])
        stored = iter(pipe.execute())
        silent = []
        for pairs in due:
            if not pairs:
                continue
            for (region, meter), packed in zip(pairs, next(stored), strict=True):
                last_ts_us = unpack_state(packed)[0].last_ts_us if packed is not None else None
                silent.append(SilentMeter(meter, region, last_ts_us))
        return silent

    def unpop(self, silent: list[SilentMeter], due_s: float) -> None:
        """Put meters back for the next sweep (their alert could not be stored), due at *due_s*
        (a threshold from sweep_threshold). Their silent mark can stay: a reading then resolves
        an alert that does not exist, which changes nothing."""
        by_shard: dict[str, dict[str | bytes, float]] = {}
        for meter in silent:
            deadlines = by_shard.setdefault(self._keys_of(meter.meter_id).deadlines, {})
            deadlines[_member(meter.region, meter.meter_id)] = due_s
        pipe = self._redis.pipeline(transaction=False)
        for key, deadlines in by_shard.items():
            pipe.zadd(key, deadlines, nx=True)
        pipe.execute()

    def restore_deadlines(self, deadlines: list[tuple[str, str, float]]) -> None:
        """Put back the deadlines (meter, region, due at in s) of meters that have none, as after
        Redis lost its memory (segs.services.spine.healing); a meter's next reading replaces it."""
        by_shard: dict[str, dict[str | bytes, float]] = {}
        for meter_id, region, due_s in deadlines:
            key = self._keys_of(meter_id).deadlines
            by_shard.setdefault(key, {})[_member(region, meter_id)] = due_s
        pipe = self._redis.pipeline(transaction=False)
        for key, members in by_shard.items():
            pipe.zadd(key, members, nx=True)
        pipe.execute()

    @property
    def shards(self) -> int:
        return self._shards

    def _all(self) -> list[ShardKeys]:
        return all_shard_keys(self._shards)

    def _keys_of(self, meter_id: str) -> ShardKeys:
        return shard_keys(shard_for(meter_id, self._shards))


def record_refusal(client: redis.Redis, now_s: float) -> None:
    """Note that the API turned readings away (503): the next sweep does not count the time since
    the previous one as silence."""
    client.set(REFUSED_AT, repr(now_s), ex=_REFUSED_AT_TTL_S)
