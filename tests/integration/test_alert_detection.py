"""Alerts found in the worker path: per-reading anomalies, silent meters, regional overload.

Readings go through the real API, broker and worker; the flush and the sweep run here, and the
flush hands the overload judgement to the worker as in production.
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC
from datetime import datetime

import pytest

from segs.domain import alerts as rules
from segs.redis_client import get_redis
from segs.services.detection import DEADLINES
from segs.services.detection import STATE_PREFIX
from segs.services.detection import SILENT
from segs.tasks.alerts import get_detection_store
from segs.tasks.alerts import sweep_silent_meters
from tests.accounts import create_account
from tests.mailbox import running_mailbox
from tests.support import MICRO
from tests.support import flush_now
from tests.support import now_us
from tests.support import post_batch
from tests.support import query
from tests.support import reading
from tests.support import scalar
from tests.support import to_rows
from tests.support import wait_for
from tests.support import wait_processed

pytestmark = pytest.mark.integration

REGION = "Pune-West"  # capacity 3400 kW in the test database
S = MICRO


def alerts_of(meter: str | None, kind: str) -> list[tuple]:
    return query(
        "SELECT severity, status, occurrence_count, message, auto_resolved FROM alerts "
        "WHERE meter_id IS NOT DISTINCT FROM %s AND type = %s ORDER BY id",
        (meter, kind),
    )


def transitions_of(kind: str) -> list[tuple]:
    return query(
        "SELECT t.kind, t.from_status, t.to_status, t.severity FROM alert_transitions t "
        "JOIN alerts a ON a.id = t.alert_id WHERE a.type = %s ORDER BY t.id",
        (kind,),
    )


def test_spike_repeat_escalation_and_clearing_through_the_worker(client, worker, published):
    meter = "ALERT-SPIKE-1"
    start = now_us() - 120 * S
    sent = 0

    def post(powers: list[float]) -> None:
        nonlocal sent
        batch = [reading(meter, REGION, start + (sent + i) * S, p) for i, p in enumerate(powers)]
        status, _ = post_batch(client, batch)
        assert status == 202
        sent += len(powers)
        wait_processed(worker, runs=len(published.snapshot()), raw_rows=sent)

    post([4.0] * 5)  # the baseline: 5 samples
    post([9.0])  # +125%: a medium spike
    wait_for(lambda: alerts_of(meter, rules.POWER_SPIKE), timeout=10)
    post([9.5])  # a repeat: counted, no transition
    post([13.0])  # +225%: escalates to high
    wait_for(lambda: alerts_of(meter, rules.POWER_SPIKE)[0][0] == "high", timeout=10)
    post([4.4])  # normal again: resolves itself
    wait_for(lambda: alerts_of(meter, rules.POWER_SPIKE)[0][1] == "resolved", timeout=10)

    assert alerts_of(meter, rules.POWER_SPIKE) == [
        (
            "high",
            "resolved",
            3,
            "Sudden power consumption spike: 225.0% increase "
            "(baseline: 4.00 kW, current: 13.00 kW)",
            True,
        )
    ]
    assert transitions_of(rules.POWER_SPIKE) == [
        ("created", None, "active", "medium"),
        ("escalated", "active", "active", "high"),
        ("resolved", "active", "resolved", "high"),
    ]
    # The anomalies did not move the baseline; the last normal reading did: 0.8 x 4 + 0.2 x 4.4
    state = get_redis().get(STATE_PREFIX + meter).decode()
    assert state.split("|")[:2] == ["9", "4080000"]


def test_the_outage_rule_fires(client, worker, published):
    meter = "ALERT-OUT-1"
    start = now_us() - 60 * S
    batch = [reading(meter, REGION, start + i * S, 3.0) for i in range(5)]
    batch.append(reading(meter, REGION, start + 5 * S, 0.05))
    assert post_batch(client, batch)[0] == 202
    wait_processed(worker, runs=len(published.snapshot()), raw_rows=6)
    wait_for(lambda: alerts_of(meter, rules.POWER_OUTAGE), timeout=10)
    assert alerts_of(meter, rules.POWER_OUTAGE) == [
        (
            "high",
            "active",
            1,
            "Possible outage: 0.05 kW against a baseline of 3.00 kW",
            False,
        )
    ]


def test_a_redelivered_batch_does_not_count_twice(clean_state):
    store = get_detection_store()
    start = now_us() - 60 * S
    rows = to_rows([reading("ALERT-REDO", REGION, start + i * S, 4.0 + i) for i in range(6)])
    first = store.observe(rows)
    state = get_redis().get(STATE_PREFIX + "ALERT-REDO")
    assert store.observe(rows) == []
    assert get_redis().get(STATE_PREFIX + "ALERT-REDO") == state
    assert [found.finding for found in first] == []
    assert state.decode().split("|")[0] == "6"


def test_silent_meter_is_reported_once_and_resolves_when_it_reports(client, worker, published):
    meter = "ALERT-SILENT-1"
    start = now_us() - 30 * S  # two readings 2 s apart: silent after 3 x 2 s
    assert post_batch(client, [reading(meter, REGION, start + i * 2 * S, 4.0) for i in (0, 1)])[0]
    wait_processed(worker, runs=len(published.snapshot()), raw_rows=2)
    deadline = get_redis().zscore(DEADLINES, f"{REGION}\n{meter}")
    assert deadline == (start + 2 * S + 3 * 2 * S) / MICRO

    assert sweep_silent_meters.run() == 1
    assert sweep_silent_meters.run() == 0  # reported once, not at every sweep
    (severity, status, count, message, _) = alerts_of(meter, rules.METER_OUTAGE)[0]
    assert (severity, status, count) == ("medium", "active", 1)
    assert message.startswith("Meter outage detected: no data received for ")

    assert post_batch(client, [reading(meter, REGION, now_us() - S, 4.0)])[0] == 202
    wait_processed(worker, runs=len(published.snapshot()), raw_rows=3)
    wait_for(lambda: alerts_of(meter, rules.METER_OUTAGE)[0][1] == "resolved", timeout=10)
    assert not get_redis().sismember(SILENT, f"{REGION}\n{meter}")


def _race(barrier, region: str) -> None:
    from segs.db import reset_engine
    from segs.db import session_scope
    from segs.services.alerts import Condition
    from segs.services.alerts import raise_alert

    reset_engine()
    barrier.wait()
    with session_scope() as session:
        raise_alert(
            session,
            Condition(rules.POWER_SPIKE, region, "ALERT-RACE"),
            "medium",
            "racing",
            datetime.now(UTC),
        )


def test_four_workers_racing_on_one_condition_open_one_alert(clean_state):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_race, args=(barrier, REGION)) for _ in range(4)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(30)
        assert proc.exitcode == 0
    assert alerts_of("ALERT-RACE", rules.POWER_SPIKE) == [("medium", "active", 4, "racing", False)]
    assert scalar("SELECT count(*) FROM alert_transitions") == 1


@pytest.fixture(scope="module")
def mailbox():
    with running_mailbox() as box:
        yield box


def test_overload_raises_after_two_windows_and_flapping_adds_no_alert(
    mailbox, app, client, worker, published
):
    """Loads (percent of 3400 kW): 95, 95 -> raise; 88, 92, 88, 92 cross 90 every window but
    neither clear (not below 85) nor repeat an alert; 101 escalates; 84, 84 clear. A customer
    of the region gets one email per transition."""
    customer = create_account(app, region=REGION)
    meter = "ALERT-LOAD-1"
    minute = 60 * S
    first = now_us() - 20 * minute
    first -= first % minute
    percents = [95, 95, 88, 92, 88, 92, 101, 84, 84]
    for index, percent in enumerate(percents):
        batch = [reading(meter, REGION, first + index * minute + 10 * S, 34 * percent)]
        assert post_batch(client, batch)[0] == 202
        wait_processed(worker, runs=len(published.snapshot()), raw_rows=index + 1)
        flush_now()
        wait_for(
            lambda n=index + 1: worker.metric(
                "segs_task_duration_seconds_count", task="evaluate_overloads"
            )
            >= n,
            timeout=10,
        )
    assert alerts_of(None, rules.REGIONAL_OVERLOAD) == [
        (
            "critical",
            "resolved",
            2,
            "Regional overload detected: 101.0% load for 2 consecutive 1-minute windows",
            True,
        )
    ]
    assert transitions_of(rules.REGIONAL_OVERLOAD) == [
        ("created", None, "active", "high"),
        ("escalated", "active", "active", "critical"),
        ("resolved", "active", "resolved", "critical"),
    ]
    mailbox.wait(customer.email, count=3)
    subjects = [received.subject for received in mailbox.to(customer.email)]
    assert subjects == [
        f"[SEGS] high REGIONAL_OVERLOAD created: {REGION}",
        f"[SEGS] critical REGIONAL_OVERLOAD escalated: {REGION}",
        f"[SEGS] critical REGIONAL_OVERLOAD resolved: {REGION}",
    ]
