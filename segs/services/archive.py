"""Archive a batch of readings in raw_readings and fold the new ones into the Redis windows.

Exactly-once, even when a task runs twice (redelivery after a killed worker, a retry):
1. The raw_readings key (meter_id, ts) decides which readings are new. Each row records the
   task (batch_id) that inserted it, so a second run of the same task finds the rows it owns,
   whether it inserted them now or on its first run, and folds exactly those.
2. The fold, the anomaly detection and the "batch applied" mark are one Redis script, so a
   batch is folded and judged once. Its findings wait in Redis until they are stored
   (segs.services.detection), so a re-run picks up those a crash or PostgreSQL left unstored.
A crash between 1 and 2 is safe: the re-run finds its rows by batch_id and folds them then.
"""

from __future__ import annotations

import logging
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
from segs.domain.readings import first_of_each_key
from segs.domain.readings import to_epoch_us
from segs.domain.windows import fold_rows
from segs.services.detection import DetectionStore
from segs.services.detection import MeterFinding
from segs.services.detection import pack_readings
from segs.services.detection import unpack_findings
from segs.services.partitions import ensure_partitions
from segs.services.windows_store import Judged
from segs.services.windows_store import WindowStore

logger = logging.getLogger(__name__)

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reading_stage (
    meter_id text, region text, reading_id text, ts_us bigint, power bigint, energy bigint,
    voltage bigint, current bigint, frequency bigint, power_factor bigint, temperature bigint
) ON COMMIT DELETE ROWS
"""

_STAGE_TYPES = ["text"] * 3 + ["int8"] * 8  # the columns of reading_stage, in order

# Timestamps travel as integer epoch microseconds; these conversions are exact both ways:
#   timestamptz 'epoch' + ts_us * interval '1 microsecond'
#   (extract(epoch FROM ts) * 1000000)::bigint
_INSERT_NEW = """
INSERT INTO raw_readings (meter_id, ts, reading_id, region, power_kw, energy_kwh, voltage,
                          current, frequency, power_factor, temperature, batch_id, received_at)
SELECT meter_id, timestamptz 'epoch' + ts_us * interval '1 microsecond', reading_id, region,
       power * 0.000001, energy * 0.000001, voltage * 0.000001, current * 0.000001,
       frequency * 0.000001, power_factor * 0.000001, temperature * 0.000001, %(batch_id)s,
       timestamptz 'epoch' + %(received_at_us)s::bigint * interval '1 microsecond'
FROM reading_stage
ON CONFLICT (meter_id, ts) DO NOTHING
"""

# Only needed when some rows conflicted (rare: duplicates older than the API's marks, or a
# re-run of this batch): which rows does this batch own, inserted now or by an earlier run?
_OWNED_BEFORE = """
SELECT r.meter_id, (extract(epoch FROM r.ts) * 1000000)::bigint
FROM reading_stage s
JOIN raw_readings r
  ON r.meter_id = s.meter_id AND r.ts = timestamptz 'epoch' + s.ts_us * interval '1 microsecond'
WHERE r.batch_id = %(batch_id)s
"""

_REGISTER_METERS = """
INSERT INTO meters (meter_id, region, first_seen, last_seen)
SELECT meter_id, min(region),
       timestamptz 'epoch' + min(ts_us) * interval '1 microsecond',
       timestamptz 'epoch' + max(ts_us) * interval '1 microsecond'
FROM reading_stage WHERE meter_id = ANY(%(meter_ids)s)
GROUP BY meter_id
ON CONFLICT (meter_id) DO UPDATE SET first_seen = EXCLUDED.first_seen
WHERE meters.first_seen IS NULL
"""


class MissingPartitionError(Exception):
    """A reading's day has no raw_readings partition yet."""


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
    """Insert *rows* into raw_readings and fold those this batch owns into the windows."""
    received = len(rows)
    rows = first_of_each_key(rows)
    try:
        owned = _insert(conn, batch_id, rows, received_at_us)
    except MissingPartitionError:
        ensure_partitions(conn, settings, now)
        kept = _drop_expired(rows, settings, now)
        expired = len(rows) - len(kept)
        owned = _insert(conn, batch_id, kept, received_at_us)
    else:
        expired = 0

    # Folded even when it owns no rows: the same step settles it in the pending ledger.
    judged = Judged(
        pack_readings(owned),
        received_at_us,
        settings.silent_after_intervals,
        settings.anomaly_relearn_after,
    )
    found = store.fold(batch_id, fold_rows(owned), judged, settings.applied_mark_ttl_s)
    applied = found is not None
    findings = unpack_findings(found) if found else []
    if not applied:
        findings = detection.unstored_findings(batch_id)

    outcome = ArchiveOutcome(
        received=received,
        owned=len(owned),
        folded=applied and bool(owned),
        expired=expired,
        findings=findings,
    )
    if applied:
        metrics.READINGS_ARCHIVED.inc(outcome.owned)
    if outcome.duplicates:
        metrics.READINGS_DUPLICATE.labels("archive").inc(outcome.duplicates)
    return outcome


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
    conn: psycopg.Connection, batch_id: str, rows: list[ReadingRow], received_at_us: int
) -> list[ReadingRow]:
    """Insert the batch in one transaction; return the rows this batch owns."""
    params = {"batch_id": batch_id, "received_at_us": received_at_us}
    try:
        with conn.transaction():
            with conn.cursor() as cursor:
                cursor.execute(_STAGE_DDL)
                with cursor.copy(
                    "COPY reading_stage (meter_id, region, reading_id, ts_us, power, energy, "
                    "voltage, current, frequency, power_factor, temperature) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    # Binary rows cost the worker and PostgreSQL about half the CPU of text.
                    copy.set_types(_STAGE_TYPES)
                    for row in rows:
                        copy.write_row(row)
                cursor.execute(_INSERT_NEW, params)
                if cursor.rowcount == len(rows):
                    owned = rows
                else:
                    cursor.execute(_OWNED_BEFORE, params)
                    mine = {(meter_id, ts_us) for meter_id, ts_us in cursor.fetchall()}
                    owned = [row for row in rows if (row[ROW_METER], row[ROW_TS]) in mine]
                unknown = sorted({row[ROW_METER] for row in owned} - _registered_meters)
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
