"""Issue 4: workers racing on the same condition open one alert, through real Celery workers.

Its own module: a worker of four pool processes must be the only one consuming, so that the four
tasks run side by side (another module's worker would take some of them).
"""

from __future__ import annotations

import pytest

from segs.domain import alerts as rules
from segs.tasks.alerts import evaluate_overloads
from tests.support import MICRO
from tests.support import WorkerProcess
from tests.support import execute
from tests.support import now_us
from tests.support import query
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Pune-West"  # capacity 3400 kW in the test database
RACERS = 4


@pytest.fixture
def four_process_worker(clean_state, tmp_path):
    """One worker with a pool of four processes, each taking one task at once."""
    proc = WorkerProcess(tmp_path / "worker", concurrency=RACERS)
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def test_four_worker_processes_judging_one_overload_open_one_alert(four_process_worker):
    """Four evaluate_overloads tasks for the same region and windows, published at once, each
    find the overload: one alert counts all four, with one `created` transition."""
    minute = 60 * MICRO
    newest = now_us() - 5 * minute
    newest -= newest % minute
    for start in (newest - minute, newest):
        execute(
            "INSERT INTO regional_aggregates_1m (region, window_start, meter_count, "
            "reading_count, total_power_kw, capacity_kw, load_percentage, energy_kwh_sum) "
            "VALUES (%s, to_timestamp(%s / 1e6), 1, 1, 3230, 3400, 95, 0)",
            (REGION, start),
        )

    for _ in range(RACERS):
        evaluate_overloads.apply_async(args=({REGION: newest},))

    def evaluated() -> float:
        return four_process_worker.metric(
            "segs_task_duration_seconds_count", task="evaluate_overloads"
        )

    wait_for(
        lambda: evaluated() == RACERS,
        timeout=15,
        message=lambda: f"{evaluated()} of {RACERS} runs\n{four_process_worker.log()[-4000:]}",
    )
    assert query(
        "SELECT severity, status, occurrence_count FROM alerts WHERE type = %s AND region = %s",
        (rules.REGIONAL_OVERLOAD, REGION),
    ) == [("high", "active", RACERS)]
    assert query(
        "SELECT t.kind, t.from_status, t.to_status, t.severity FROM alert_transitions t "
        "JOIN alerts a ON a.id = t.alert_id WHERE a.type = %s AND a.region = %s",
        (rules.REGIONAL_OVERLOAD, REGION),
    ) == [("created", None, "active", "high")]
