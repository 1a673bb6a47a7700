"""Quarantined windows: region windows the flush could not write.

One window that PostgreSQL refuses (a constraint, a value out of range) must not stop the flush
of every other window, nor be retried every few seconds for ever. The flush records it here
with its meters' statistics and the error, and drops it from Redis; the other windows, the
15-minute pass and the regional rows go on. After a fix, releasing the window hands its
statistics back to the flush, which merges it like any late window (and rolls a 1-minute
window up into its 15-minute window then), so the aggregates end up exact.
"""

from __future__ import annotations

import uuid
from dataclasses import astuple
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.readings import from_epoch_us
from segs.domain.readings import to_epoch_us
from segs.domain.windows import WindowKey
from segs.domain.windows import WindowStats
from segs.errors import ConflictError
from segs.errors import NotFoundError
from segs.models import QuarantinedWindow
from segs.models.base import BIGINT_MAX
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.shared.keyspace import parse_flushing_name
from segs.services.shared.keyspace import shard_keys
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page
from segs.services.spine.dead_letters import storable_text
from segs.services.spine.windows_store import WindowStore

QUARANTINED = "quarantined"
RELEASED = "released"
STATUSES = (QUARANTINED, RELEASED)

_RECORD = """
INSERT INTO quarantined_windows AS q (flush_key, size, region, window_start, meters, meter_count,
                                      reading_count, error_type, error, status)
VALUES (%(flush_key)s, %(size)s, %(region)s, %(window_start)s, %(meters)s, %(meter_count)s,
        %(reading_count)s, %(error_type)s, %(error)s, 'quarantined')
ON CONFLICT (flush_key) DO UPDATE SET
    meters = EXCLUDED.meters,
    meter_count = EXCLUDED.meter_count,
    reading_count = EXCLUDED.reading_count,
    error_type = EXCLUDED.error_type,
    error = EXCLUDED.error,
    status = 'quarantined',
    times_quarantined = q.times_quarantined + 1,
    quarantined_at = now(),
    released_at = NULL,
    released_by = NULL
"""


@dataclass(frozen=True)
class QuarantinedView:
    id: int
    size: str
    region: str
    window_start: datetime
    meter_count: int
    reading_count: int
    error_type: str
    error: str
    status: str
    times_quarantined: int
    quarantined_at: datetime
    released_at: datetime | None
    released_by: uuid.UUID | None


def record(
    conn: psycopg.Connection,
    flush_key: str,
    window: WindowKey,
    meters: dict[str, WindowStats],
    error: BaseException,
) -> None:
    """Keep a window the flush could not write, with its statistics and why.

    :raises psycopg.Error: PostgreSQL failed too (an outage: the flush stops and tries again).
    """
    with conn.transaction():
        conn.execute(
            _RECORD,
            {
                "flush_key": flush_key,
                "size": window.size,
                "region": window.region,
                "window_start": from_epoch_us(window.start_us),
                "meters": Jsonb({meter: list(astuple(stats)) for meter, stats in meters.items()}),
                "meter_count": len(meters),
                "reading_count": sum(stats.count for stats in meters.values()),
                "error_type": storable_text(type(error).__qualname__)[:200],
                "error": storable_text(str(error))[:10_000],
            },
        )


def list_quarantined(
    session: Session, status: str | None, *, page: int, page_size: int
) -> Page[QuarantinedView]:
    """Quarantined windows (of one status, if given), newest first."""
    statement = select(QuarantinedWindow).order_by(
        QuarantinedWindow.quarantined_at.desc(), QuarantinedWindow.id.desc()
    )
    if status is not None:
        statement = statement.where(QuarantinedWindow.status == status)
    windows, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page([_view(window) for window in windows], total)


def get_quarantined(session: Session, window_id: int) -> QuarantinedView:
    return _view(_window(session, window_id))


def release(
    session: Session, store: WindowStore, actor: Actor, window_id: int, now: datetime
) -> QuarantinedView:
    """Hand a quarantined window back to the flush, which writes it on its next run.

    :raises ConflictError: the window was released already.
    """
    window = _window(session, window_id, lock=True)
    if window.status != QUARANTINED:
        raise ConflictError(f"window {window_id} is {window.status} already", code="RELEASED")
    window.status = RELEASED
    window.released_at = now
    window.released_by = actor.id
    record_audit(
        session,
        actor,
        "window.release",
        "quarantined_window",
        window_id,
        {
            "region": window.region,
            "size": window.size,
            "windowStart": window.window_start.isoformat(),
        },
    )
    session.flush()
    # Before the commit: if Redis refuses, nothing changes. Restoring twice (a commit failing
    # after) writes the same statistics under the same name: merged once all the same.
    store.restore_flushing(
        _flushing_name(window),
        {meter: WindowStats(*fields) for meter, fields in window.meters.items()},
    )
    return _view(window)


def _flushing_name(window: QuarantinedWindow) -> str:
    """The name the window's hash had; one quarantined before windows were kept per shard
    (``segs:flushing:<token>:segs:win:...``) goes back under a name of shard 0 made from it."""
    try:
        parse_flushing_name(window.flush_key)
    except ValueError:
        key = WindowKey(window.size, window.region, to_epoch_us(window.window_start))
        return shard_keys(0).flushing_window(f"quarantined{window.id}", key)
    return window.flush_key


def release_all(session: Session, store: WindowStore, actor: Actor, now: datetime) -> int:
    """Release every quarantined window; returns how many."""
    ids = list(
        session.scalars(select(QuarantinedWindow.id).where(QuarantinedWindow.status == QUARANTINED))
    )
    for window_id in ids:
        release(session, store, actor, window_id, now)
    return len(ids)


def _window(session: Session, window_id: int, *, lock: bool = False) -> QuarantinedWindow:
    window = (
        session.get(QuarantinedWindow, window_id, with_for_update=True if lock else None)
        if window_id <= BIGINT_MAX
        else None
    )
    if window is None:
        raise NotFoundError(f"quarantined window {window_id} not found")
    return window


def _view(window: QuarantinedWindow) -> QuarantinedView:
    return QuarantinedView(
        id=window.id,
        size=window.size,
        region=window.region,
        window_start=window.window_start,
        meter_count=window.meter_count,
        reading_count=window.reading_count,
        error_type=window.error_type,
        error=window.error,
        status=window.status,
        times_quarantined=window.times_quarantined,
        quarantined_at=window.quarantined_at,
        released_at=window.released_at,
        released_by=window.released_by,
    )
