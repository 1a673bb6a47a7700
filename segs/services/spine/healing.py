"""A Redis that lost its memory heals itself: the lost windows are rebuilt from PostgreSQL.

What Redis loses in a restart without persistence (or a failover to an empty replica), and what
takes its place:
- open windows (readings folded and not yet flushed): the aggregates of every quarter-hour that
  received readings shortly before the loss are rebuilt from raw_readings (segs.services.
  recompute), with no manual step;
- "batch applied" marks: a batch folded before the loss and delivered again after it (a retry,
  a redelivery) folds a second time, but the rebuild, which runs once every such batch has had
  its turn, rewrites its quarter-hour from raw_readings, where each reading is once;
- detection baselines: relearned from each meter's next readings (5 of them);
- silent-meter deadlines: put back from raw_readings for every meter that reported within
  the detection state's lifetime (its last reading's acceptance plus the missed intervals at the
  gap between its last two readings), so a meter that fell silent meanwhile is still reported,
  however rarely it reports; one with its outage alert open already is left as it is;
- token revocations and failed-login counts: reloaded from PostgreSQL
  (segs.services.accounts.revocation, segs.services.accounts.login_guard);
- the pending ledger: with RabbitMQ the broker still holds every accepted batch. With the Redis
  broker and no persistence, accepted readings still queued are lost with it (README,
  "Durability").

SEGS notices the loss by a generation marker: a key it sets when it finds none. Finding none
means Redis is new or lost its memory; a row in redis_losses then lists the quarter-hours that
received readings in the LOOKBACK before, any of which may have had a window in Redis. Once
SEGS_REDIS_LOSS_SETTLE_S have passed (longer than the longest retry backoff, so every batch
from before the loss has folded again), each pass rebuilds those not busy with a window in
Redis, until none is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import psycopg
import redis

from segs.config import Settings
from segs.domain import alerts
from segs.services.spine.detection import DetectionStore
from segs.services.spine.pending import PendingLedger
from segs.services.spine.recompute import FlushRunningError
from segs.services.spine.recompute import recompute_quarters
from segs.services.spine.windows_store import WindowStore

GENERATION = "segs:generation"
# How long before the loss a reading may have been received and still sat in a lost window: a
# late quarter-hour gathers for 7.5 minutes (SEGS_LATE_WINDOW_HOLD_S), plus flushes and grace.
LOOKBACK = timedelta(minutes=15)

# A deadline that passed longer than this before the loss was popped by a sweep then, and its
# meter reported silent (an open alert keeps a meter out anyway); it is not put back.
DEADLINE_PASSED_LONG_AGO = timedelta(hours=1)

# Each meter seen since the horizon: its newest reading and the gap to the one before. Two
# index probes per meter on raw_readings' key (meter_id, ts), newest partition first, so a
# meter reporting once a day is found as cheaply as one reporting every 2 s; a meter's
# last_seen (its newest flushed reading) lets the first probe start at its own partition.
_LAST_TWO_READINGS = """
SELECT m.meter_id, newest.region, newest.received_at, newest.ts - before.ts AS gap
FROM meters m
CROSS JOIN LATERAL (
    SELECT r.region, r.ts, r.received_at FROM raw_readings r
    WHERE r.meter_id = m.meter_id AND r.ts >= coalesce(m.last_seen, %(horizon)s)
    ORDER BY r.ts DESC LIMIT 1
) newest
CROSS JOIN LATERAL (
    SELECT r.ts FROM raw_readings r
    WHERE r.meter_id = m.meter_id AND r.ts >= %(horizon)s AND r.ts < newest.ts
    ORDER BY r.ts DESC LIMIT 1
) before
WHERE (m.last_seen IS NULL OR m.last_seen >= %(horizon)s)
  AND NOT EXISTS (
      SELECT 1 FROM alerts a
      WHERE a.meter_id = m.meter_id AND a.type = %(outage)s AND a.status = ANY(%(open)s))
"""

_QUARTERS_RECEIVED_SINCE = """
SELECT DISTINCT date_bin(interval '15 minutes', ts, timestamptz 'epoch')
FROM raw_readings WHERE received_at >= %s
"""


@dataclass
class HealingReport:
    lost: bool = False
    deadlines: int = 0  # silence deadlines put back when the loss was noticed
    rebuilt: int = 0
    waiting: int = 0
    healed: int = 0


def notice_loss(
    conn: psycopg.Connection,
    client: redis.Redis,
    detection: DetectionStore,
    settings: Settings,
    now: datetime,
) -> int | None:
    """Set the generation marker if Redis has none; if it had none, put the silent-meter
    deadlines back and record a loss with the quarter-hours to rebuild. None if no loss was
    found, else how many deadlines were put back."""
    if not client.set(GENERATION, now.isoformat(), nx=True):
        return None
    deadlines = restore_deadlines(conn, detection, settings, now)
    with conn.transaction():
        quarters = [row[0] for row in conn.execute(_QUARTERS_RECEIVED_SINCE, (now - LOOKBACK,))]
        conn.execute(
            "INSERT INTO redis_losses (detected_at, pending_quarters, healed_at) "
            "VALUES (%s, %s, CASE WHEN cardinality(%s::timestamptz[]) = 0 THEN %s END)",
            (now, quarters, quarters, now),
        )
    return deadlines


def restore_deadlines(
    conn: psycopg.Connection, detection: DetectionStore, settings: Settings, now: datetime
) -> int:
    """Put back the silent-meter deadline of every meter that reported within the detection
    state's lifetime (SEGS_DETECTION_STATE_TTL_DAYS) and is not reported silent already: its
    last reading's acceptance plus the missed intervals at the gap between its last two
    readings, as the fold script sets it. Returns how many."""
    with conn.transaction():
        readings = conn.execute(
            _LAST_TWO_READINGS,
            {
                "horizon": now - timedelta(days=settings.detection_state_ttl_days),
                "outage": alerts.METER_OUTAGE,
                "open": list(alerts.OPEN_STATUSES),
            },
        ).fetchall()
    oldest_kept = (now - DEADLINE_PASSED_LONG_AGO).timestamp()
    deadlines = []
    for meter_id, region, received_at, gap in readings:
        gap_s = gap.total_seconds()
        due_s = received_at.timestamp() + settings.silent_after_intervals * gap_s
        if gap_s > 0 and due_s >= oldest_kept:
            deadlines.append((meter_id, region, due_s))
    detection.restore_deadlines(deadlines)
    return len(deadlines)


def heal(
    conn: psycopg.Connection,
    client: redis.Redis,
    store: WindowStore,
    ledger: PendingLedger,
    detection: DetectionStore,
    settings: Settings,
    now: datetime,
) -> HealingReport:
    """One pass: notice a loss, and rebuild what settled losses still wait for."""
    deadlines = notice_loss(conn, client, detection, settings, now)
    report = HealingReport(lost=deadlines is not None, deadlines=deadlines or 0)
    settle_s = settings.redis_loss_settle_s
    with conn.transaction():
        losses = conn.execute(
            "SELECT id, detected_at, pending_quarters FROM redis_losses WHERE healed_at IS NULL"
        ).fetchall()
    for loss_id, detected_at, pending in losses:
        if now < detected_at + timedelta(seconds=settle_s):
            report.waiting += 1
            continue
        try:
            rebuilt = recompute_quarters(conn, client, store, ledger, list(pending), lock_wait_s=5)
        except FlushRunningError:
            report.waiting += 1  # a long flush: the next pass tries again
            continue
        report.rebuilt += rebuilt.quarters
        with conn.transaction():
            conn.execute(
                "UPDATE redis_losses SET pending_quarters = %s, "
                "healed_at = CASE WHEN cardinality(%s::timestamptz[]) = 0 THEN %s END "
                "WHERE id = %s",
                (rebuilt.busy, rebuilt.busy, now, loss_id),
            )
        if not rebuilt.busy:
            report.healed += 1
    return report
