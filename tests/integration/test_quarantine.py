"""One window that cannot be written is quarantined; every other window flushes."""

from __future__ import annotations

import subprocess

import pytest

from segs.domain.readings import from_epoch_us
from tests.accounts import create_account
from tests.support import MICRO
from tests.support import REPO
from tests.support import archive_in_process
from tests.support import assert_stored_equals_recomputed
from tests.support import dt
from tests.support import execute
from tests.support import flush_now
from tests.support import past_15m_window
from tests.support import query
from tests.support import reading
from tests.support import region_rows
from tests.support import to_rows

pytestmark = [pytest.mark.integration, pytest.mark.api]

WEST, EAST = "Pune-West", "Pune-East"
S = MICRO


@pytest.fixture
def refused_meter(clean_state):
    """aggregates_1m refuses one meter's rows: a data error a retry cannot cure."""
    execute("ALTER TABLE aggregates_1m ADD CONSTRAINT test_poison CHECK (meter_id <> 'Q-BAD')")
    try:
        yield
    finally:
        execute("ALTER TABLE aggregates_1m DROP CONSTRAINT IF EXISTS test_poison")


def test_a_window_that_cannot_be_written_is_quarantined_and_the_rest_flush(
    app, client, refused_meter
):
    quarter = past_15m_window(45)
    minute = quarter + 2 * 60 * S
    readings = [
        reading("Q-BAD", WEST, minute + 5 * S, 9.0, energy=0.5),
        reading("Q-W1", WEST, minute + 7 * S, 1.0, energy=0.1),  # same window as Q-BAD
        reading("Q-W1", WEST, minute + 65 * S, 1.5, energy=0.1),  # the next minute
        reading("Q-E1", EAST, minute + 9 * S, 2.0, energy=0.2),
    ]
    archive_in_process(to_rows(readings))

    report = flush_now()
    # West's minute is refused; West's next minute, East's minute and both quarters flush.
    assert (report["windows"], report["quarantined"]) == (4, 1)
    assert sorted(query("SELECT meter_id, window_start FROM aggregates_1m")) == [
        ("Q-E1", dt(minute)),
        ("Q-W1", dt(minute + 60 * S)),
    ]
    assert (WEST, dt(quarter)) in {(r, w) for r, w in region_rows("15m")}
    [(window_id, size, region, start, meters, readings_held, error)] = query(
        "SELECT id, size, region, window_start, meter_count, reading_count, error "
        "FROM quarantined_windows"
    )
    assert (size, region, start, meters, readings_held) == ("1m", WEST, dt(minute), 2, 2)
    assert "test_poison" in error
    # The next flushes leave it alone: nothing is retried every few seconds.
    assert flush_now()["quarantined"] == 0

    operator = create_account(app, role="OPERATOR", region=None)
    listed = client.get("/api/v1/quarantined-windows", headers=operator.headers).get_json()
    assert [(item["id"], item["status"]) for item in listed["items"]] == [
        (window_id, "quarantined")
    ]

    # The fix, then one command: the window is written and rolled up into its quarter.
    execute("ALTER TABLE aggregates_1m DROP CONSTRAINT test_poison")
    flushed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "flask"), "--app", "segs.web", "flush-quarantined"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "released 1 window(s)" in flushed.stdout and "0 quarantined" in flushed.stdout
    assert_stored_equals_recomputed()
    assert query("SELECT status FROM quarantined_windows") == [("released",)]
    assert query("SELECT action FROM audit_log WHERE entity_type = 'quarantined_window'") == [
        ("window.release",)
    ]


def test_a_window_that_fails_again_after_release_is_quarantined_again(app, client, refused_meter):
    minute = past_15m_window(45) + 60 * S
    archive_in_process(to_rows([reading("Q-BAD", WEST, minute, 1.0)]))
    assert flush_now()["quarantined"] == 1
    admin = create_account(app, role="ADMIN", region=None)
    [(window_id,)] = query("SELECT id FROM quarantined_windows")
    released = client.post(
        f"/api/v1/quarantined-windows/{window_id}/release", headers=admin.headers
    )
    assert (released.status_code, released.get_json()["status"]) == (200, "released")
    assert (
        client.post(
            f"/api/v1/quarantined-windows/{window_id}/release", headers=admin.headers
        ).status_code
        == 409
    )
    # The cause is still there.
    assert flush_now()["quarantined"] == 1
    shown = client.get(f"/api/v1/quarantined-windows/{window_id}", headers=admin.headers).get_json()
    assert (shown["status"], shown["timesQuarantined"]) == ("quarantined", 2)
    assert shown["windowStart"].startswith(from_epoch_us(minute).strftime("%Y-%m-%dT%H:%M"))
