"""Archive reading batches in raw_readings and fold the new readings into the Redis windows.

A worker folds many batches (the task messages of its shard queues) in one go: one COPY, one
transaction and one fold-script call per shard (a shard's keys share one Redis Cluster slot,
segs.services.shared.keyspace), so the cost of a reading depends little on how many shards or
requests it arrived in.

Exactly-once, even when a batch runs twice (redelivery after a killed worker, a retry), alone or
in a different group:
1. The raw_readings key (meter_id, ts) decides which readings are new. Each row records the
   batch (batch_id) that inserted it, so a second run of the same batch finds the rows it owns,
   whether it inserted them now or on its first run, and folds exactly those.
2. The fold, the anomaly detection and each batch's "applied" mark are one Redis script, so a
   batch is folded and judged once. A group holding a batch folded before is folded without it.
   Findings wait in Redis until they are stored (segs.services.spine.detection), so a re-run picks
   up those a crash or PostgreSQL left unstored.
A crash between 1 and 2 is safe: the re-run finds its rows by batch_id and folds them then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta

import psycopg

from segs import metrics
from segs.config import Settings
from segs.domain.readings import ROW_METER
from segs.domain.readings import ROW_TS
from segs.domain.readings import ReadingRow
from segs.domain.readings import to_epoch_us
from segs.domain.sharding import shard_for
from segs.domain.windows import fold_rows
from segs.services.spine.detection import DetectionStore
from segs.services.spine.detection import MeterFinding
from segs.services.spine.detection import pack_readings
from segs.services.spine.detection import unpack_findings
from segs.services.spine.partitions import ensure_partitions
from segs.services.spine.windows_store import Judged
from segs.services.spine.windows_store import LateWindows
from segs.services.spine.windows_store import WindowStore

logger = logging.getLogger(__name__)

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reading_stage (
    meter_id text, region text, reading_id text, ts_us bigint, power bigint, energy bigint,
    voltage bigint, current bigint, frequency bigint, power_factor bigint, temperature bigint,
    batch_no int
) ON COMMIT DELETE ROWS
"""

# The columns of reading_stage, in order: a row, then its batch's position in the group (1-based).
_STAGE_TYPES = ["text"] * 3 + ["int8"] * 8 + ["int4"]

# Timestamps travel as integer epoch microseconds; these conversions are exact both ways:
#   timestamptz 'epoch' + ts_us * interval '1 microsecond'
#   (extract(epoch FROM ts) * 1000000)::bigint
# Each staged row names its batch by position: the group's ids and receive times are arrays.
_INSERT_NEW = """
INSERT INTO raw_readings (meter_id, ts, reading_id, region, power_kw, energy_kwh, voltage,
                          current, frequency, power_factor, temperature, batch_id, received_at)
SELECT meter_id, timestamptz 'epoch' + ts_us * interval '1 microsecond', reading_id, region,
       power * 0.000001, energy * 0.000001, voltage * 0.000001, current * 0.000001,
       frequency * 0.000001, power_factor * 0.000001, temperature * 0.000001,
       (%(batch_ids)s::uuid[])[batch_no],
       timestamptz 'epoch' + (%(received_at_us)s::bigint[])[batch_no] * interval '1 microsecond'
FROM reading_stage
ON CONFLICT (meter_id, ts) DO NOTHING
"""

# Only needed when some rows conflicted (rare: duplicates older than the API's marks, or a
# re-run of a batch): which rows does each batch own, inserted now or by an earlier run?
_OWNED_BEFORE = """
SELECT s.batch_no, r.meter_id, (extract(epoch FROM r.ts) * 1000000)::bigint
FROM reading_stage s
JOIN raw_readings r
  ON r.meter_id = s.meter_id AND r.ts = timestamptz 'epoch' + s.ts_us * interval '1 microsecond'
WHERE r.batch_id = (%(batch_ids)s::uuid[])[s.batch_no]
"""

# A meter the API registered has its first_seen already, so it is skipped before the
# conflict arm, which locks every row it meets, even those its WHERE leaves alone. Meeting
# 100,000 new meters, that locking cost PostgreSQL 6.5 s in a 40 s benchmark; 0.4 s without.
# The OFFSET keeps the check an index probe per unknown meter: as an anti-join, the planner
# hashed the whole table whenever its statistics were older than the table (22 ms a group at
# 100,000 meters, growing with the table, against 9 ms for 4,000 probes).
_REGISTER_METERS = """
INSERT INTO meters (meter_id, region, first_seen, last_seen)
SELECT s.meter_id, min(s.region),
       timestamptz 'epoch' + min(s.ts_us) * interval '1 microsecond',
       timestamptz 'epoch' + max(s.ts_us) * interval '1 microsecond'
FROM unnest(%(meter_ids)s::text[]) AS unknown(meter_id)
JOIN reading_stage s ON s.meter_id = unknown.meter_id
WHERE NOT EXISTS (
    SELECT FROM meters m
    WHERE m.meter_id = unknown.meter_id AND m.first_seen IS NOT NULL
    OFFSET 0
)
GROUP BY s.meter_id
ON CONFLICT (meter_id) DO UPDATE SET first_seen = EXCLUDED.first_seen
WHERE meters.first_seen IS NULL
"""


class MissingPartitionError(Exception):
    """A reading's day has no raw_readings partition yet."""


@dataclass(frozen=True)
class Batch:
    """One reading batch (one task message): its id, rows, when the API accepted them, and the
    shard of its meters (whose queue carried it)."""

    batch_id: str
    rows: list[ReadingRow]
    received_at_us: int
    shard: int


@dataclass
class ArchiveOutcome:
    received: int
    owned: int
    folded: bool
    expired: int = 0
    # What detection found in the batch's readings and is not stored yet.
    findings: list[MeterFinding] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.received - self.owned - self.expired


# Where findings wait in Redis until stored (segs.services.spine.detection): shard, batch id.
FindingsRef = tuple[int, str]


@dataclass
class GroupOutcome:
    """What archiving a group of batches did to each, and the findings still to store, each
    list under the place its findings wait in Redis."""

    batches: dict[str, ArchiveOutcome]
    findings: dict[FindingsRef, list[MeterFinding]] = field(default_factory=dict)


# Meters this process has registered: later batches skip the INSERT for them.
_registered_meters: set[str] = set()
_REGISTERED_LIMIT = 2_000_000


def archive_and_fold(
    conn: psycopg.Connection,
    store: WindowStore,
    detection: DetectionStore,
    settings: Settings,
    *,
    batch_id: str,
    rows: list[ReadingRow],
    received_at_us: int,
    now: datetime,
) -> ArchiveOutcome:
    """One batch through archive_and_fold_group, as the queue of its meters' shard would carry
    it; its outcome carries its findings."""
    shard = shard_for(rows[0][ROW_METER], settings.shards) if rows else 0
    group = archive_and_fold_group(
        conn, store, detection, settings, [Batch(batch_id, rows, received_at_us, shard)], now
    )
    outcome = group.batches[batch_id]
    outcome.findings = [found for listed in group.findings.values() for found in listed]
    return outcome


def archive_and_fold_group(
    conn: psycopg.Connection,
    store: WindowStore,
    detection: DetectionStore,
    settings: Settings,
    batches: Sequence[Batch],
    now: datetime,
) -> GroupOutcome:
    """Insert the batches' rows into raw_readings and fold those each batch owns into the
    windows, all in one transaction and one fold."""
    kept = [batch.rows for batch in batches]
    try:
        owned = _insert(conn, batches, kept)
    except MissingPartitionError:
        ensure_partitions(conn, settings, now)
        kept = [_drop_expired(rows, settings, now) for rows in kept]
        owned = _insert(conn, batches, kept)
    expired = {
        batch.batch_id: len(batch.rows) - len(rows)
        for batch, rows in zip(batches, kept, strict=True)
        if len(rows) < len(batch.rows)
    }

    outcome = GroupOutcome(batches={})
    late = LateWindows.at(to_epoch_us(now), settings.window_grace_s, settings.late_window_hold_s)
    by_shard: dict[int, list[tuple[Batch, list[ReadingRow]]]] = {}
    for batch, rows in zip(batches, owned, strict=True):
        by_shard.setdefault(batch.shard, []).append((batch, rows))
    for shard, pending in sorted(by_shard.items()):
        _fold_shard(store, detection, settings, shard, pending, expired, late, outcome)

    duplicates = sum(item.duplicates for item in outcome.batches.values())
    if duplicates:
        metrics.READINGS_DUPLICATE.labels("archive").inc(duplicates)
    return outcome


def _fold_shard(
    store: WindowStore,
    detection: DetectionStore,
    settings: Settings,
    shard: int,
    pending: list[tuple[Batch, list[ReadingRow]]],
    expired: dict[str, int],
    late: LateWindows,
    outcome: GroupOutcome,
) -> None:
    """Fold one shard's batches of the group (with the rows each owns) in one script call."""
    while True:
        # Folded even when they own no rows: the same step settles them in the pending ledger.
        folded_rows = [row for _, rows in pending for row in rows]
        judged = Judged(
            pack_readings(folded_rows),
            max((batch.received_at_us for batch, _ in pending), default=0),
            settings.silent_after_intervals,
            settings.anomaly_relearn_after,
        )
        ids = [batch.batch_id for batch, _ in pending]
        result = store.fold(
            shard, ids, fold_rows(folded_rows), judged, settings.applied_mark_ttl_s, late
        )
        if not result.applied_before:
            break
        # Folded by an earlier run: fold the group again without them (nothing changed yet).
        for batch, rows in pending:
            if batch.batch_id in result.applied_before:
                outcome.batches[batch.batch_id] = _outcome(batch, rows, expired, False)
                found = detection.unstored_findings(shard, batch.batch_id)
                if found:
                    outcome.findings[shard, batch.batch_id] = found
        pending = [item for item in pending if item[0].batch_id not in result.applied_before]
    for batch, rows in pending:
        outcome.batches[batch.batch_id] = _outcome(batch, rows, expired, True)
    if result.findings:
        outcome.findings[shard, ids[0]] = unpack_findings(result.findings)
    metrics.READINGS_ARCHIVED.inc(len(folded_rows))


def _outcome(
    batch: Batch, owned: list[ReadingRow], expired: dict[str, int], applied: bool
) -> ArchiveOutcome:
    return ArchiveOutcome(
        received=len(batch.rows),
        owned=len(owned),
        folded=applied and bool(owned),
        expired=expired.get(batch.batch_id, 0),
    )


def _claim(
    rows: list[ReadingRow], number: int, mine: set[tuple[int, str, int]]
) -> list[ReadingRow]:
    """The rows of batch *number* whose stored key it owns, each key claimed once."""
    owned = []
    for row in rows:
        key = (number, row[ROW_METER], row[ROW_TS])
        if key in mine:
            mine.discard(key)
            owned.append(row)
    return owned


def _drop_expired(rows: list[ReadingRow], settings: Settings, now: datetime) -> list[ReadingRow]:
    """Set aside readings whose day partition retention has already dropped.

    A reading accepted just inside the maximum age can wait in a queue until its day's
    partition is dropped; it cannot be stored (nor checked for duplicates) any more, and it must
    not block the rest of its batch.
    """
    horizon_us = to_epoch_us(now - timedelta(days=settings.raw_retention_days))
    kept = [row for row in rows if row[ROW_TS] >= horizon_us]
    if len(kept) < len(rows):
        metrics.READINGS_EXPIRED.inc(len(rows) - len(kept))
        logger.warning(
            "%d readings outlived raw_readings retention before archiving", len(rows) - len(kept)
        )
    return kept


def _insert(
    conn: psycopg.Connection, batches: Sequence[Batch], staged_rows: list[list[ReadingRow]]
) -> list[list[ReadingRow]]:
    """Insert the rows in one transaction; return the rows each batch owns.

    A (meter, instant) key staged twice (a repeat within the group) is inserted once: the
    INSERT then reports fewer rows than staged, and each stored key is owned by one row only.
    """
    params = {
        "batch_ids": [batch.batch_id for batch in batches],
        "received_at_us": [batch.received_at_us for batch in batches],
    }
    staged = sum(len(rows) for rows in staged_rows)
    try:
        with conn.transaction():
            with conn.cursor() as cursor:
                cursor.execute(_STAGE_DDL)
                with cursor.copy(
                    "COPY reading_stage (meter_id, region, reading_id, ts_us, power, energy, "
                    "voltage, current, frequency, power_factor, temperature, batch_no) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    # Binary rows cost the worker and PostgreSQL about half the CPU of text.
                    copy.set_types(_STAGE_TYPES)
                    for number, rows in enumerate(staged_rows, start=1):
                        tail = [number]
                        for row in rows:
                            copy.write_row(row + tail)
                cursor.execute(_INSERT_NEW, params)
                if cursor.rowcount == staged:
                    owned = staged_rows  # every key new, hence each staged once
                else:
                    cursor.execute(_OWNED_BEFORE, params)
                    mine = {(number, meter, ts) for number, meter, ts in cursor.fetchall()}
                    owned = [
                        _claim(rows, number, mine)
                        for number, rows in enumerate(staged_rows, start=1)
                    ]
                unknown = sorted(
                    {row[ROW_METER] for rows in owned for row in rows} - _registered_meters
                )
                if unknown:
                    cursor.execute(_REGISTER_METERS, {"meter_ids": unknown})
    except psycopg.errors.CheckViolation as exc:
        # "no partition of relation raw_readings found for row"
        if "partition" in str(exc):
            raise MissingPartitionError(str(exc)) from exc
        raise
    if len(_registered_meters) > _REGISTERED_LIMIT:
        _registered_meters.clear()
    _registered_meters.update(unknown)
    return owned
