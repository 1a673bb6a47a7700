"""Alerts found in the worker path: per-reading anomalies, silent meters, regional overload.

Readings go through the real API, broker and worker; the flush and the sweep run here, and the
flush hands the overload judgement to the worker as in production. One worker serves the whole
module (starting one takes seconds); each test uses meters of its own.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from segs.db import raw_connection
from segs.db import session_scope
from segs.domain import alerts as rules
from segs.domain.readings import to_epoch_us
from segs.redis_client import get_redis
from segs.services.alerts import rules as alerting
from segs.services.spine.archive import archive_and_fold
from segs.services.spine.detection import pack_readings
from segs.services.spine.detection import record_refusal
from segs.services.spine.detection import unpack_state
from segs.services.spine.windows_store import Judged
from segs.services.spine.windows_store import LateWindows
from segs.tasks.alerts import get_detection_store
from segs.tasks.alerts import store_findings
from segs.tasks.stores import get_pending_ledger
from segs.tasks.stores import get_window_store
from simulator.meters import REGIONS
from simulator.meters import Scenario
from simulator.meters import build_fleet
from simulator.meters import generate_readings
from simulator.meters import iso_timestamp
from tests import support
from tests.accounts import create_account
from tests.support import MICRO
from tests.support import flush_now
from tests.support import keys_of
from tests.support import now_us
from tests.support import post_and_fold
from tests.support import query
from tests.support import reading
from tests.support import scalar
from tests.support import shard_of
from tests.support import to_rows
from tests.support import wait_for

# No window counts as late here (they are old test windows, flushed on their end).
NEVER_LATE = LateWindows(cutoff_us=0, hold_us=0)

pytestmark = pytest.mark.integration

REGION = "Pune-West"  # capacity 3400 kW in the test database
S = MICRO


def judge_batch(rows: list[list], received_at_us: int, batch_id: str) -> bytes | None:
    """Run the fold script on *rows* alone (no windows): the detection part of a worker's fold."""
    judged = Judged(pack_readings(rows), received_at_us, 3, rules.RELEARN_AFTER)
    shard = shard_of(rows[0][0])
    result = get_window_store().fold(shard, [batch_id], {}, judged, 60, NEVER_LATE)
    return None if result.applied_before else result.findings


def alerts_of(meter: str | None, kind: str, region: str = "%") -> list[tuple]:
    return query(
        "SELECT severity, status, occurrence_count, message, auto_resolved FROM alerts "
        "WHERE meter_id IS NOT DISTINCT FROM %s AND type = %s AND region LIKE %s ORDER BY id",
        (meter, kind, region),
    )


def transitions_of(kind: str, region: str = "%") -> list[tuple]:
    return query(
        "SELECT t.kind, t.from_status, t.to_status, t.severity FROM alert_transitions t "
        "JOIN alerts a ON a.id = t.alert_id WHERE a.type = %s AND a.region LIKE %s ORDER BY t.id",
        (kind, region),
    )


def test_spike_repeat_escalation_and_clearing_through_the_worker(client, mail_worker):
    meter = "ALERT-SPIKE-1"
    start = now_us() - 120 * S
    sent = 0

    def send(powers: list[float]) -> None:
        nonlocal sent
        batch = [reading(meter, REGION, start + (sent + i) * S, p) for i, p in enumerate(powers)]
        post_and_fold(client, mail_worker, batch)
        sent += len(powers)

    send([4.0] * 5)  # the baseline: 5 samples
    send([9.0])  # +125%: a medium spike
    wait_for(lambda: alerts_of(meter, rules.POWER_SPIKE), timeout=10)
    send([9.5])  # a repeat: counted, no transition
    send([13.0])  # +225%: escalates to high
    wait_for(lambda: alerts_of(meter, rules.POWER_SPIKE)[0][0] == "high", timeout=10)
    send([4.4])  # normal again: resolves itself
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
    state = get_detection_store().state(meter)
    assert state is not None and (state.samples, state.baseline) == (9, 4_080_000)


def test_the_outage_rule_fires(client, mail_worker):
    meter = "ALERT-OUT-1"
    start = now_us() - 60 * S
    batch = [reading(meter, REGION, start + i * S, 3.0) for i in range(5)]
    batch.append(reading(meter, REGION, start + 5 * S, 0.05))
    post_and_fold(client, mail_worker, batch)
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


def test_a_redelivered_batch_is_judged_once(mail_worker):
    start = now_us() - 60 * S
    rows = to_rows([reading("ALERT-REDO", REGION, start + i * S, 4.0 + i) for i in range(6)])
    assert judge_batch(rows, now_us(), "redo-1") == b""
    state = get_redis().hget(keys_of("ALERT-REDO").states, "ALERT-REDO")
    assert judge_batch(rows, now_us(), "redo-1") is None
    assert get_redis().hget(keys_of("ALERT-REDO").states, "ALERT-REDO") == state
    assert unpack_state(state)[0].samples == 6
    # Another batch with the same readings (a duplicate past the API's marks) changes nothing.
    assert judge_batch(rows, now_us(), "redo-2") == b""
    assert get_redis().hget(keys_of("ALERT-REDO").states, "ALERT-REDO") == state


def test_findings_wait_in_redis_until_stored(mail_worker):
    """A task whose alert write failed after the fold (PostgreSQL down, a crash) runs again:
    the fold is not repeated, and the findings it made are still there to store."""
    meter = "ALERT-OUTBOX"
    batch_id = str(uuid.uuid4())
    start = now_us() - 60 * S
    rows = to_rows(
        [reading(meter, REGION, start + i * S, p) for i, p in enumerate([4.0] * 5 + [13.0])]
    )

    def run_batch() -> list:
        with raw_connection() as conn:
            outcome = archive_and_fold(
                conn,
                get_window_store(),
                get_detection_store(),
                support.settings(),
                batch_id=batch_id,
                rows=rows,
                received_at_us=now_us(),
                now=datetime.now(UTC),
            )
        return outcome.findings

    first = run_batch()
    assert [(found.meter_id, found.finding.type) for found in first] == [(meter, rules.POWER_SPIKE)]
    assert run_batch() == first  # the first attempt never stored them
    store_findings(shard_of(meter), batch_id, first)
    assert alerts_of(meter, rules.POWER_SPIKE)[0][:3] == ("high", "active", 1)
    assert run_batch() == []


def sweep(at: datetime) -> None:
    with session_scope() as session:
        alerting.sweep_silent_meters(session, get_detection_store(), at)


def test_silent_meter_is_reported_once_and_resolves_when_it_reports(client, mail_worker):
    meter = "ALERT-SILENT-1"
    member = f"{REGION}\n{meter}"
    start = now_us() - 30 * S  # two readings 2 s apart: silent 3 x 2 s after the last's acceptance
    post_and_fold(
        client, mail_worker, [reading(meter, REGION, start + i * 2 * S, 4.0) for i in (0, 1)]
    )
    accepted = to_epoch_us(
        scalar("SELECT max(received_at) FROM raw_readings WHERE meter_id = %s", (meter,))
    )
    assert get_redis().zscore(keys_of(meter).deadlines, member) == (accepted + 3 * 2 * S) / MICRO
    later = datetime.now(UTC) + timedelta(seconds=10)

    # A batch accepted a minute ago still waits in a queue: it may hold this meter's reading.
    ledger = get_pending_ledger()
    ledger.record([("stalled-batch", 0, [])], 0, time.time() - 60)
    sweep(later)
    assert alerts_of(meter, rules.METER_OUTAGE) == []
    ledger.settle([(0, "stalled-batch")])
    sweep(later)
    assert get_redis().zscore(keys_of(meter).deadlines, member) is None
    assert unpack_state(get_redis().hget(keys_of(meter).states, meter))[1] is True  # marked silent
    sweep(later)  # reported once, not at every sweep
    [(severity, status, count, message, _)] = alerts_of(meter, rules.METER_OUTAGE)
    assert (severity, status, count) == ("medium", "active", 1)
    assert message.startswith("Meter outage detected: no data received for ")

    post_and_fold(client, mail_worker, [reading(meter, REGION, now_us() - S, 4.0)])
    wait_for(lambda: alerts_of(meter, rules.METER_OUTAGE)[0][1] == "resolved", timeout=10)
    assert unpack_state(get_redis().hget(keys_of(meter).states, meter)) == (
        get_detection_store().state(meter),
        False,
    )


def test_time_the_pipeline_was_down_does_not_count_as_silence(mail_worker):
    meter = "ALERT-SILENT-2"
    member = f"{REGION}\n{meter}"
    accepted = now_us()
    readings = [reading(meter, REGION, accepted - (2 - i) * 2 * S, 4.0) for i in (0, 1)]
    judge_batch(to_rows(readings), accepted, f"{meter}-batch")
    stopped = datetime.now(UTC)
    sweep(stopped)  # the last sweep before beat and the workers stop; 6 s of grace were left
    assert get_redis().zscore(keys_of(meter).deadlines, member) is not None

    restarted = stopped + timedelta(hours=1)
    sweep(restarted)  # the hour the pipeline was down is not silence
    assert alerts_of(meter, rules.METER_OUTAGE) == []
    sweep(restarted + timedelta(seconds=10))  # now the meter has really missed its readings
    [(severity, status, count, _, _)] = alerts_of(meter, rules.METER_OUTAGE)
    assert (severity, status, count) == ("medium", "active", 1)


def test_time_the_api_refused_readings_does_not_count_as_silence(mail_worker):
    meter = "ALERT-SILENT-3"
    accepted = now_us()
    readings = [reading(meter, REGION, accepted - (2 - i) * 2 * S, 4.0) for i in (0, 1)]
    judge_batch(to_rows(readings), accepted, f"{meter}-batch")
    first = datetime.now(UTC)
    sweep(first)
    # The API sheds load (503): the meter's next reading may be among those turned away.
    record_refusal(get_redis(), first.timestamp() + 1)
    sweep(first + timedelta(seconds=20))
    assert alerts_of(meter, rules.METER_OUTAGE) == []
    sweep(first + timedelta(seconds=40))  # accepting again, and still nothing from the meter
    [(severity, status, count, _, _)] = alerts_of(meter, rules.METER_OUTAGE)
    assert (severity, status, count) == ("medium", "active", 1)


def transitions_of_meter(meter: str) -> list[tuple]:
    return query(
        "SELECT t.kind, t.from_status, t.to_status, t.severity FROM alert_transitions t "
        "JOIN alerts a ON a.id = t.alert_id WHERE a.meter_id = %s ORDER BY t.id",
        (meter,),
    )


def _race(barrier, region: str) -> None:
    from segs.db import reset_engine
    from segs.db import session_scope
    from segs.services.alerts.lifecycle import Condition
    from segs.services.alerts.lifecycle import raise_alert

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


def test_four_workers_racing_on_one_condition_open_one_alert(mail_worker):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_race, args=(barrier, REGION)) for _ in range(4)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(30)
        assert proc.exitcode == 0
    assert alerts_of("ALERT-RACE", rules.POWER_SPIKE) == [("medium", "active", 4, "racing", False)]
    assert transitions_of_meter("ALERT-RACE") == [("created", None, "active", "medium")]


def test_overload_raises_after_two_windows_and_flapping_adds_no_alert(
    mailbox, app, client, mail_worker
):
    """Loads (percent of Delhi-North's 4200 kW): 95, 95 -> raise; 88, 92, 88, 92 cross 90
    every window but neither clear (not below 85) nor repeat an alert; 101 escalates; 84, 84
    clear. A customer of the region gets one email per transition."""
    # A region of its own: the evaluation judges each region's newest flushed window.
    region = "Delhi-North"
    customer = create_account(app, region=region)
    meter = "ALERT-LOAD-1"
    evaluated = mail_worker.metric("segs_task_duration_seconds_count", task="evaluate_overloads")
    minute = 60 * S
    first = now_us() - 20 * minute
    first -= first % minute
    percents = [95, 95, 88, 92, 88, 92, 101, 84, 84]
    for index, percent in enumerate(percents):
        post_and_fold(
            client, mail_worker, [reading(meter, region, first + index * minute, 42 * percent)]
        )
        flush_now()
        wait_for(
            lambda n=evaluated + index + 1: (
                mail_worker.metric("segs_task_duration_seconds_count", task="evaluate_overloads")
                >= n
            ),
            timeout=10,
        )
    assert alerts_of(None, rules.REGIONAL_OVERLOAD, region) == [
        (
            "critical",
            "resolved",
            2,
            "Regional overload detected: 101.0% load for 2 consecutive 1-minute windows",
            True,
        )
    ]
    assert transitions_of(rules.REGIONAL_OVERLOAD, region) == [
        ("created", None, "active", "high"),
        ("escalated", "active", "active", "critical"),
        ("resolved", "active", "resolved", "critical"),
    ]

    # The loads also move the region's price across bands: those tariff mails are not alerts.
    def alert_mail() -> list[str]:
        subjects = [received.subject for received in mailbox.to(customer.email)]
        return [subject for subject in subjects if "REGIONAL_OVERLOAD" in subject]

    wait_for(lambda: len(alert_mail()) >= 3, timeout=30, message=lambda: str(alert_mail()))
    assert alert_mail() == [
        f"[SEGS] high REGIONAL_OVERLOAD created: {region}",
        f"[SEGS] critical REGIONAL_OVERLOAD escalated: {region}",
        f"[SEGS] critical REGIONAL_OVERLOAD resolved: {region}",
    ]


def post_simulator_cycle(client, worker, fleet, scenario, region, epoch_s, cycle, rng) -> None:
    """Post the simulator's readings of one cycle for *region*, and wait until they are folded."""
    readings = generate_readings(
        fleet,
        scenario.profiles(epoch_s),
        seq=cycle,
        timestamp=iso_timestamp(epoch_s),
        interval_s=10,
        duplicate_rate=0,
        rng=rng,
    )
    post_and_fold(client, worker, [item for item in readings if item["region"] == region])


def test_the_simulators_overload_scenario_raises_a_regional_overload(client, mail_worker):
    """Two minutes of `python -m simulator --scenario overload` (default 5000 meters) for one
    region: its 500 meters draw 1.9-2.3 x their base load, far above 90 % of its capacity."""
    region = "Hyderabad-Central"
    rng = random.Random(7)
    fleet = build_fleet(5000, REGIONS, rng)
    # At full load from the first cycle: these meters have no learned baselines to follow.
    scenario = Scenario(fleet, name="overload", mode="normal", region=region, ramp_s=0)
    minute_s = 60
    first_s = (now_us() // MICRO // minute_s - 10) * minute_s
    evaluated = mail_worker.metric("segs_task_duration_seconds_count", task="evaluate_overloads")
    for cycle in (0, 1):
        epoch_s = first_s + cycle * minute_s
        post_simulator_cycle(client, mail_worker, fleet, scenario, region, epoch_s, cycle, rng)
    flush_now()
    wait_for(
        lambda: (
            mail_worker.metric("segs_task_duration_seconds_count", task="evaluate_overloads")
            > evaluated
        ),
        timeout=10,
    )
    [(severity, status, count, message, _)] = alerts_of(None, rules.REGIONAL_OVERLOAD, region)
    load = scalar(
        "SELECT load_percentage FROM regional_aggregates_1m WHERE region = %s "
        "ORDER BY window_start DESC LIMIT 1",
        (region,),
    )
    assert load > 100
    assert (severity, status, count) == ("critical", "active", 1)
    assert message == (
        f"Regional overload detected: {load:.1f}% load for 2 consecutive 1-minute windows"
    )


def test_the_simulators_outage_scenario_raises_regional_incidents(client, mail_worker):
    """`python -m simulator --scenario outage` for one region, after its meters learned their
    baselines: most of them read nothing (POWER_OUTAGE), a few a fraction of their load
    (POWER_DROP). They make one REGIONAL_OUTAGE and one REGIONAL_DROP incident holding every
    such meter alert, not one alert told per meter."""
    region = "Chennai-North"
    rng = random.Random(11)
    fleet = build_fleet(2000, REGIONS, rng)  # 200 meters in the region
    normal = Scenario(fleet, name="steady", mode="normal", region=region)
    outage = Scenario(fleet, name="outage", mode="normal", region=region)
    first_s = now_us() // MICRO - 600
    for cycle in range(8):  # 6 normal readings each (the baseline needs 5), then 2 in outage
        epoch_s = first_s + 10 * cycle
        scenario = normal if cycle < 6 else outage
        post_simulator_cycle(client, mail_worker, fleet, scenario, region, epoch_s, cycle, rng)

    def meter_alerts(kind: str) -> list[tuple]:
        return query(
            "SELECT meter_id, incident_id FROM alerts WHERE region = %s AND type = %s "
            "AND meter_id IS NOT NULL ORDER BY meter_id",
            (region, kind),
        )

    def incidents() -> list[tuple]:
        return query(
            "SELECT type, id, meter_count, status FROM alerts WHERE region = %s "
            "AND meter_id IS NULL ORDER BY type",
            (region,),
        )

    # The worker stores each fold's findings after the fold: wait until two looks a second apart
    # see the same alerts.
    seen: list[tuple] = []

    def settled() -> bool:
        looked = (incidents(), meter_alerts(rules.POWER_OUTAGE), meter_alerts(rules.POWER_DROP))
        seen.append(looked)
        time.sleep(1)
        return len(looked[0]) == 2 and seen[-2:] == [looked, looked]

    wait_for(settled, timeout=30, message=lambda: str(seen[-1][0]))
    outages, drops = meter_alerts(rules.POWER_OUTAGE), meter_alerts(rules.POWER_DROP)
    (drop_type, drop_id, drop_meters, _), (outage_type, outage_id, outage_meters, _) = incidents()
    assert (drop_type, outage_type) == (rules.REGIONAL_DROP, rules.REGIONAL_OUTAGE)
    # Most of the region's 200 meters lost power; every one of their alerts is in the incident.
    assert len(outages) > 100
    assert outage_meters == len(outages)
    assert {incident for _, incident in outages} == {outage_id}
    assert drop_meters == len(drops) >= 10
    assert {incident for _, incident in drops} == {drop_id}
    assert meter_alerts(rules.POWER_SPIKE) == []
