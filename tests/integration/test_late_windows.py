"""Late readings gather in their reopened window and are flushed once, not every flush."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from segs.config import Settings
from segs.db import raw_connection
from segs.domain.readings import to_epoch_us
from segs.domain.windows import WindowKey
from segs.services.spine.archive import archive_and_fold
from segs.services.spine.flush import flush_closed_windows
from segs.tasks.alerts import get_detection_store
from tests import support
from tests.support import MICRO
from tests.support import assert_stored_equals_recomputed
from tests.support import meter_rows
from tests.support import past_15m_window
from tests.support import reading
from tests.support import region_rows
from tests.support import to_rows
from tests.support import window_store

HOLD_S = 30
REGION = "Bangalore-East"


def held_settings() -> Settings:
    return replace(support.settings(), late_window_hold_s=HOLD_S)


def archive_at(now: datetime, readings: list[dict]) -> None:
    with raw_connection() as conn:
        archive_and_fold(
            conn,
            window_store(),
            get_detection_store(),
            held_settings(),
            batch_id=str(uuid.uuid4()),
            rows=to_rows(readings),
            received_at_us=to_epoch_us(now),
            now=now,
        )


def flush_at(now: datetime) -> list[WindowKey]:
    with raw_connection() as conn:
        return flush_closed_windows(conn, window_store(), held_settings(), now).flushed


def test_a_backfill_window_gathers_its_late_readings_and_is_flushed_once(clean_state):
    window = past_15m_window(45)
    grace = support.settings().window_grace_s
    start = datetime.now(UTC)
    first = [reading(f"LATE-{n}", REGION, window + n * MICRO, 1.0 + n) for n in range(3)]
    second = [reading(f"LATE-{n}", REGION, window + (10 + n) * MICRO, 2.0) for n in range(3)]

    archive_at(start, first)
    # Its window ended 44 minutes ago, yet it waits for the hold...
    assert flush_at(start + timedelta(seconds=1 + grace)) == []
    archive_at(start + timedelta(seconds=20), second)
    assert flush_at(start + timedelta(seconds=HOLD_S - 1)) == []
    # ...and then both deliveries are flushed together, the meter rows written once.
    minute = WindowKey("1m", REGION, window)
    assert flush_at(start + timedelta(seconds=HOLD_S)) == [minute]
    rows = meter_rows("1m")
    assert {key[0]: (row[1], row[-1]) for key, row in rows.items()} == {
        f"LATE-{n}": (2, 1) for n in range(3)
    }
    [(meter_count, reading_count, *_)] = region_rows("1m").values()
    assert (meter_count, reading_count) == (3, 6)

    # The 15-minute window it rolled into is late too: held from that flush on, the hold per
    # minute of its length, so a backfill rewrites its rows every 7.5 minutes at most.
    after_minute = start + timedelta(seconds=HOLD_S)
    assert flush_at(after_minute + timedelta(seconds=449)) == []
    assert flush_at(after_minute + timedelta(seconds=450)) == [WindowKey("15m", REGION, window)]
    assert_stored_equals_recomputed()


def test_a_current_window_is_flushed_at_its_end_whatever_the_hold(clean_state):
    window = past_15m_window(0) + 900 * MICRO  # ends in the future: not late
    start = datetime.now(UTC)
    archive_at(start, [reading("ON-TIME", REGION, window + 5 * MICRO, 1.0)])
    end = datetime.fromtimestamp((window + 60 * MICRO) / MICRO, UTC)
    grace = timedelta(seconds=support.settings().window_grace_s)
    assert flush_at(end + grace - timedelta(microseconds=1)) == []
    assert flush_at(end + grace) == [WindowKey("1m", REGION, window)]


def test_the_last_minute_of_a_quarter_flushed_on_time_leaves_the_quarter_on_time(clean_state):
    quarter = past_15m_window(0) + 900 * MICRO  # ends in the future
    last_minute = quarter + 14 * 60 * MICRO
    start = datetime.now(UTC)
    archive_at(start, [reading("LAST-MINUTE", REGION, last_minute + 5 * MICRO, 1.0)])
    end = datetime.fromtimestamp((quarter + 900 * MICRO) / MICRO, UTC)
    grace = timedelta(seconds=support.settings().window_grace_s)
    # Its end is the quarter's: both are flushed by the same run, the quarter not held.
    assert flush_at(end + grace) == [
        WindowKey("1m", REGION, last_minute),
        WindowKey("15m", REGION, quarter),
    ]
