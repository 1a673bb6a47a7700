"""Dead letters: reading batches that kept failing for a reason other than an outage.

A batch is set aside after SEGS_DATA_ERROR_ATTEMPTS failures, with its rows and the error, so it
cannot hold up its queue nor be retried for ever. What it may have archived but not folded is
taken out of raw_readings in the same transaction, so raw_readings and the aggregates still
agree while the batch waits. An operator then replays it (after a fix) or discards it:

- A replay publishes the batch again under its own id. Running a batch twice changes nothing
  twice (segs.services.spine.archive), so a replay folds each reading exactly once, whatever
  happened before.
- Discarding keeps the record, marked discarded: its readings are not counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.readings import ROW_METER
from segs.domain.readings import ROW_TS
from segs.domain.readings import ReadingRow
from segs.errors import ConflictError
from segs.errors import NotFoundError
from segs.models import DeadLetterBatch
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page

DEAD = "dead"
REPLAYED = "replayed"
DISCARDED = "discarded"
STATUSES = (DEAD, REPLAYED, DISCARDED)

# Re-publishes a batch under its own id: (shard, rows, received_at_us, batch_id).
# segs.tasks.readings.publish_batches: rows by shard, received at (µs), task ids by shard.
Publish = Callable[[dict[int, list[ReadingRow]], int, dict[int, str]], None]

_FORGET_UNFOLDED = """
DELETE FROM raw_readings r
USING unnest(%(meters)s::text[], %(ts)s::bigint[]) AS k(meter_id, ts_us)
WHERE r.meter_id = k.meter_id
  AND r.ts = timestamptz 'epoch' + k.ts_us * interval '1 microsecond'
  AND r.batch_id = %(batch_id)s
"""

_SET_ASIDE = """
INSERT INTO dead_letter_batches AS d (batch_id, shard, received_at_us, rows_json, reading_count,
                                      error_type, error, attempts, status)
VALUES (%(batch_id)s, %(shard)s, %(received_at_us)s, %(rows)s, %(count)s, %(error_type)s,
        %(error)s, %(attempts)s, 'dead')
ON CONFLICT (batch_id) DO UPDATE SET
    error_type = EXCLUDED.error_type,
    error = EXCLUDED.error,
    attempts = EXCLUDED.attempts,
    -- A replayed batch that fails again is set aside again; a repeat of the same setting
    -- aside (its worker died before acknowledging) is not counted twice.
    times_dead = d.times_dead + CASE WHEN d.status = 'dead' THEN 0 ELSE 1 END,
    status = 'dead',
    dead_at = CASE WHEN d.status = 'dead' THEN d.dead_at ELSE now() END,
    resolved_at = NULL,
    resolved_by = NULL
"""


@dataclass(frozen=True)
class DeadLetterView:
    batch_id: uuid.UUID
    shard: int
    received_at_us: int
    reading_count: int
    error_type: str
    error: str
    attempts: int
    status: str
    times_dead: int
    dead_at: datetime
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    # Only when one dead letter is shown: the batch's rows as the workers receive them.
    rows: list[ReadingRow] | None = None


def storable_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL, and an error message may quote one."""
    return text.replace("\x00", "\\x00")


def set_aside(
    conn: psycopg.Connection,
    *,
    batch_id: str,
    shard: int,
    received_at_us: int,
    rows: list[ReadingRow],
    error: BaseException,
    attempts: int,
    folded: bool,
) -> None:
    """Record a failing batch as a dead letter; unless it was *folded*, drop what it archived.

    :raises psycopg.Error: PostgreSQL failed (an outage: the caller retries).
    """
    # Only rows that could have been archived: a malformed row, or a key PostgreSQL cannot hold,
    # never was (and the key could not even be sent to look).
    storable = [
        row
        for row in rows
        if isinstance(row, list)
        and len(row) > ROW_TS
        and isinstance(row[ROW_METER], str)
        and "\x00" not in row[ROW_METER]
        and isinstance(row[ROW_TS], int)
    ]
    with conn.transaction():
        if not folded and storable:
            conn.execute(
                _FORGET_UNFOLDED,
                {
                    "meters": [row[ROW_METER] for row in storable],
                    "ts": [row[ROW_TS] for row in storable],
                    "batch_id": batch_id,
                },
            )
        conn.execute(
            _SET_ASIDE,
            {
                "batch_id": batch_id,
                "shard": shard,
                "received_at_us": received_at_us,
                "rows": orjson.dumps(rows),
                "count": len(rows),
                "error_type": storable_text(type(error).__qualname__)[:200],
                "error": storable_text(str(error))[:10_000],
                "attempts": attempts,
            },
        )


def list_dead_letters(
    session: Session, status: str | None, *, page: int, page_size: int
) -> Page[DeadLetterView]:
    """Dead letters (of one status, if given), newest first, without their rows."""
    statement = select(DeadLetterBatch).order_by(
        DeadLetterBatch.dead_at.desc(), DeadLetterBatch.batch_id
    )
    if status is not None:
        statement = statement.where(DeadLetterBatch.status == status)
    letters, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page([_view(letter) for letter in letters], total)


def get_dead_letter(session: Session, batch_id: uuid.UUID) -> DeadLetterView:
    """One dead letter with its rows."""
    letter = _letter(session, batch_id)
    return _view(letter, with_rows=True)


def replay(
    session: Session, actor: Actor, batch_id: uuid.UUID, publish: Publish, now: datetime
) -> DeadLetterView:
    """Publish a dead batch again under its own id (after the fix its error called for).

    The batch is published before this session commits: if the broker refuses it, nothing
    changes; if the commit fails after, a second replay only runs the batch again, harmlessly.

    :raises ConflictError: the batch is not dead (replayed or discarded already).
    """
    letter = _resolve(session, actor, batch_id, REPLAYED, now)
    publish(
        {letter.shard: orjson.loads(letter.rows_json)},
        letter.received_at_us,
        {letter.shard: str(batch_id)},
    )
    return _view(letter)


def discard(session: Session, actor: Actor, batch_id: uuid.UUID, now: datetime) -> DeadLetterView:
    """Give up on a dead batch: its readings are not counted; the record stays.

    :raises ConflictError: the batch is not dead.
    """
    return _view(_resolve(session, actor, batch_id, DISCARDED, now))


def _resolve(
    session: Session, actor: Actor, batch_id: uuid.UUID, status: str, now: datetime
) -> DeadLetterBatch:
    """Mark a dead letter replayed or discarded, audited."""
    letter = _letter(session, batch_id, lock=True)
    if letter.status != DEAD:
        raise ConflictError(
            f"batch {batch_id} is {letter.status} already", code="DEAD_LETTER_RESOLVED"
        )
    letter.status = status
    letter.resolved_at = now
    letter.resolved_by = actor.id
    action = "dead_letter.replay" if status == REPLAYED else "dead_letter.discard"
    record_audit(session, actor, action, "dead_letter", batch_id, _details(letter))
    session.flush()
    return letter


def _letter(session: Session, batch_id: uuid.UUID, *, lock: bool = False) -> DeadLetterBatch:
    letter = session.get(DeadLetterBatch, batch_id, with_for_update=True if lock else None)
    if letter is None:
        raise NotFoundError(f"dead letter {batch_id} not found")
    return letter


def _details(letter: DeadLetterBatch) -> dict[str, Any]:
    return {
        "readings": letter.reading_count,
        "errorType": letter.error_type,
        "timesDead": letter.times_dead,
    }


def _view(letter: DeadLetterBatch, *, with_rows: bool = False) -> DeadLetterView:
    return DeadLetterView(
        batch_id=letter.batch_id,
        shard=letter.shard,
        received_at_us=letter.received_at_us,
        reading_count=letter.reading_count,
        error_type=letter.error_type,
        error=letter.error,
        attempts=letter.attempts,
        status=letter.status,
        times_dead=letter.times_dead,
        dead_at=letter.dead_at,
        resolved_at=letter.resolved_at,
        resolved_by=letter.resolved_by,
        rows=orjson.loads(letter.rows_json) if with_rows else None,
    )
