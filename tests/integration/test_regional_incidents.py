"""Regional incidents: meter outages and drops of one region at once become one alert, told once.

Findings are stored and silent meters swept by the functions the worker and beat run
(segs.services.alerts.rules), in this process, so each test states exactly which transitions were
handed to the notification queue. The notification itself goes through a real worker and SMTP
server in the first test. Each test starts from empty tables.
"""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from segs.db import session_scope
from segs.domain import alerts as rules
from segs.domain.alerts import Clear
from segs.domain.alerts import Raise
from segs.domain.incidents import IncidentRule
from segs.redis_client import get_redis
from segs.services.alerts import rules as alerting
from segs.services.spine.detection import MeterFinding
from segs.tasks.alerts import get_detection_store
from segs.tasks.alerts import store_findings
from segs.tasks.notifications import redispatch_stale_transitions
from tests.accounts import create_account
from tests.support import execute
from tests.support import keys_of
from tests.support import now_us
from tests.support import query
from tests.support import scalar
from tests.support import shard_of
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Pune-East"
OTHER_REGION = "Delhi-South"
# The documented defaults, stated here so the tests do not depend on the environment.
RULE = IncidentRule(min_meters=10, min_fraction=Decimal("0.01"), window_s=30)
OUTAGE = Raise(rules.POWER_OUTAGE, "high", "Possible outage: 0.00 kW against 3.00 kW")
DROP = Raise(rules.POWER_DROP, "low", "Sudden power consumption drop")


def meters(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index:03d}" for index in range(count)]


def found(meter_ids: list[str], finding, region: str = REGION) -> list[MeterFinding]:
    return [MeterFinding(meter, region, finding, now_us()) for meter in meter_ids]


def record(findings: list[MeterFinding], at: datetime | None = None) -> list[int]:
    """Store findings as the worker does; return the transitions handed to the queue."""
    with session_scope() as session:
        return alerting.record_findings(session, findings, at or datetime.now(UTC), RULE)


def go_silent(meter_ids: list[str], region: str = REGION) -> list[int]:
    """Make the meters due for the silent sweep, and sweep as beat does."""
    store = get_detection_store()
    store.restore_deadlines([(meter, region, 0.0) for meter in meter_ids])
    with session_scope() as session:
        return alerting.sweep_silent_meters(session, store, datetime.now(UTC), RULE)


def settle(at: datetime) -> list[int]:
    with session_scope() as session:
        return alerting.settle_incidents(session, get_detection_store(), RULE, at)


def incidents(region: str = REGION) -> list[tuple]:
    return query(
        "SELECT id, type, severity, status, meter_count, message FROM alerts "
        "WHERE region = %s AND meter_id IS NULL ORDER BY id",
        (region,),
    )


def grouped_meters(incident_id: int) -> list[str]:
    return [
        meter
        for (meter,) in query(
            "SELECT DISTINCT meter_id FROM alerts WHERE incident_id = %s ORDER BY meter_id",
            (incident_id,),
        )
    ]


def transitions_of_alert(alert_id: int) -> list[int]:
    return [
        transition
        for (transition,) in query(
            "SELECT id FROM alert_transitions WHERE alert_id = %s ORDER BY id", (alert_id,)
        )
    ]


def undispatched() -> list[tuple[int, str]]:
    """(alert, kind) of the transitions still in the outbox: handed to the queue (which no
    worker reads here, but in the first test) or held."""
    return query(
        "SELECT alert_id, kind FROM alert_transitions WHERE dispatched_at IS NULL ORDER BY id"
    )


def test_a_burst_above_the_threshold_is_one_incident_told_once(
    app, clean_state, mail_worker, mailbox
):
    burst = meters("BURST", 12)
    owner = create_account(app, region=REGION, meters=tuple(burst))
    batch_id = str(uuid.uuid4())
    store_findings(shard_of(burst[0]), batch_id, found(burst, OUTAGE))

    [(incident_id, kind, severity, status, count, message)] = incidents()
    assert (kind, severity, status, count) == (rules.REGIONAL_OUTAGE, "high", "active", 12)
    assert message == "Regional outage in Pune-East: 12 meters lost power or stopped reporting"
    assert grouped_meters(incident_id) == burst
    # Every meter alert's transition left the outbox as grouped under the incident.
    assert query(
        "SELECT count(*), count(*) FILTER (WHERE grouped_into = %s AND dispatched_at IS NOT NULL) "
        "FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id WHERE a.meter_id IS NOT NULL",
        (incident_id,),
    ) == [(12, 12)]
    message_sent = mailbox.wait(owner.email)
    assert message_sent.subject == "[SEGS] high REGIONAL_OUTAGE created: Pune-East"
    assert "Regional outage in Pune-East: 12 meters" in message_sent.text
    [incident_transition] = transitions_of_alert(incident_id)
    wait_for(
        lambda: scalar(
            "SELECT dispatched_at FROM alert_transitions WHERE id = %s", (incident_transition,)
        ),
        timeout=10,
    )
    wait_for(lambda: scalar("SELECT count(*) FROM notification_deliveries") == 1, timeout=10)
    assert undispatched() == []  # nothing else is left to tell
    assert query("SELECT subject, channel, status FROM notification_deliveries") == [
        (f"transition:{incident_transition}", "email", "sent")
    ]
    assert len(mailbox.to(owner.email)) == 1


def test_late_meters_join_the_open_incident_without_a_notification_each(app, clean_state):
    first, late_outages, late_silent = meters("FIRST", 10), meters("LATE", 2), meters("QUIET", 3)
    create_account(app, region=REGION, meters=(*first, *late_outages, *late_silent))
    [created] = record(found(first, OUTAGE))
    [(incident_id, *_)] = incidents()
    assert transitions_of_alert(incident_id) == [created]

    assert record(found(late_outages, OUTAGE)) == []
    assert go_silent(late_silent) == []  # METER_OUTAGE is the same regional outage
    [(_, kind, severity, status, count, message)] = incidents()
    assert (kind, severity, status, count) == (rules.REGIONAL_OUTAGE, "high", "active", 15)
    assert message == "Regional outage in Pune-East: 15 meters lost power or stopped reporting"
    assert grouped_meters(incident_id) == sorted([*first, *late_outages, *late_silent])
    assert undispatched() == [(incident_id, "created")]
    # A meter seen in both conditions counts once.
    assert go_silent(first[:1]) == []
    assert incidents()[0][4] == 15
    assert query("SELECT type FROM alerts WHERE meter_id = %s ORDER BY type", (first[0],)) == [
        (rules.METER_OUTAGE,),
        (rules.POWER_OUTAGE,),
    ]


def test_below_the_threshold_meter_alerts_are_told_one_by_one(app, clean_state):
    alone, few = meters("ALONE", 1), meters("FEW", 8)
    create_account(app, region=REGION, meters=(*alone, *few))
    # Alone, an outage is told at once, as before incidents.
    [told] = record(found(alone, OUTAGE))
    assert transitions_of_alert(scalar("SELECT id FROM alerts WHERE meter_id = %s", alone)) == [
        told
    ]
    # With company but below the threshold: held for the window, then told one by one.
    started = datetime.now(UTC)
    assert record(found(few, OUTAGE)) == []
    assert settle(started + timedelta(seconds=29)) == []
    released = settle(started + timedelta(seconds=31))
    assert released == [
        transition
        for (transition,) in query(
            "SELECT t.id FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id "
            "WHERE a.meter_id LIKE 'FEW-%' ORDER BY t.id"
        )
    ]
    assert len(released) == 8
    assert incidents() == []
    assert query(
        "SELECT count(*) FROM alerts WHERE type = 'POWER_OUTAGE' AND incident_id IS NULL "
        "AND notify_after IS NULL AND status = 'active'"
    ) == [(9,)]


def test_held_alerts_join_the_incident_that_forms_within_their_window(app, clean_state):
    alone, held, rest = meters("A", 1), meters("B", 4), meters("C", 5)
    create_account(app, region=REGION, meters=(*alone, *held, *rest))
    assert len(record(found(alone, OUTAGE))) == 1  # told at once: nobody else yet
    execute("UPDATE alert_transitions SET dispatched_at = now()")  # as the worker did meanwhile
    assert record(found(held, OUTAGE)) == []
    [created] = record(found(rest, OUTAGE))
    [(incident_id, _, _, _, count, _)] = incidents()
    assert transitions_of_alert(incident_id) == [created]
    assert count == 10
    assert grouped_meters(incident_id) == [*alone, *held, *rest]
    # The held alerts were never told: their transitions are grouped, and nothing is held.
    assert query(
        "SELECT count(*) FROM alert_transitions WHERE grouped_into = %s", (incident_id,)
    ) == [(9,)]
    assert scalar("SELECT count(*) FROM alerts WHERE notify_after IS NOT NULL") == 0
    assert settle(datetime.now(UTC) + timedelta(seconds=31)) == []


def test_two_regions_make_two_incidents(app, clean_state):
    here, there = meters("HERE", 10), meters("THERE", 11)
    create_account(app, region=REGION, meters=tuple(here))
    create_account(app, region=OTHER_REGION, meters=tuple(there))
    made = record([*found(here, DROP), *found(there, DROP, OTHER_REGION)])
    [(here_id, here_type, here_severity, _, here_count, here_message)] = incidents()
    [(there_id, there_type, _, _, there_count, _)] = incidents(OTHER_REGION)
    assert sorted(made) == sorted([*transitions_of_alert(here_id), *transitions_of_alert(there_id)])
    assert (here_type, there_type) == (rules.REGIONAL_DROP, rules.REGIONAL_DROP)
    assert (here_severity, here_count, there_count) == ("low", 10, 11)
    assert here_message == "Regional drop in Pune-East: 10 meters draw under half their baseline"
    assert grouped_meters(here_id) == here
    assert grouped_meters(there_id) == there


def test_outages_and_drops_of_one_region_are_separate_incidents(app, clean_state):
    dark, dim = meters("DARK", 10), meters("DIM", 10)
    create_account(app, region=REGION, meters=(*dark, *dim))
    record([*found(dark, OUTAGE), *found(dim, DROP)])
    assert [(kind, count) for _, kind, _, _, count, _ in incidents()] == [
        (rules.REGIONAL_DROP, 10),
        (rules.REGIONAL_OUTAGE, 10),
    ]


def test_a_more_severe_meter_joining_escalates_the_incident_once(app, clean_state):
    silent, dark = meters("SIL", 10), meters("DARK", 1)
    create_account(app, region=REGION, meters=(*silent, *dark))
    go_silent(silent)
    [(incident_id, _, severity, _, _, _)] = incidents()
    assert severity == "medium"
    [escalated] = record(found(dark, OUTAGE))
    assert incidents()[0][2] == "high"
    assert query("SELECT kind, severity FROM alert_transitions WHERE id = %s", (escalated,)) == [
        ("escalated", "high")
    ]
    assert len(transitions_of_alert(incident_id)) == 2


def _store_half(barrier, half: list[str]) -> None:
    from segs.db import reset_engine

    reset_engine()
    barrier.wait()
    record(found(half, OUTAGE))


def test_two_workers_storing_halves_of_one_outage_form_one_incident(app, clean_state):
    """Each half is below the threshold; the grouping lock makes the second count the first's."""
    burst = meters("HALF", 12)
    create_account(app, region=REGION, meters=tuple(burst))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_store_half, args=(barrier, half)) for half in (burst[:6], burst[6:])
    ]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(30)
        assert proc.exitcode == 0
    [(incident_id, _, _, _, count, _)] = incidents()
    assert count == 12
    assert grouped_meters(incident_id) == burst
    assert scalar("SELECT count(*) FROM alerts WHERE notify_after IS NOT NULL") == 0


def test_the_outbox_sweep_leaves_held_transitions_to_their_window(app, clean_state):
    few = meters("WAIT", 3)
    create_account(app, region=REGION, meters=tuple(few))
    assert record(found(few, OUTAGE)) == []
    execute("UPDATE alert_transitions SET at = at - interval '1 minute'")
    assert redispatch_stale_transitions.run() == 0
    assert len(undispatched()) == 3


def test_an_incident_resolves_itself_below_the_threshold_with_its_alerts(app, clean_state):
    dark, silent = meters("DARK", 10), meters("SIL", 2)
    create_account(app, region=REGION, meters=(*dark, *silent))
    record(found(dark, OUTAGE))
    go_silent(silent)
    [(incident_id, *_)] = incidents()

    assert record(found(dark[:2], Clear(rules.POWER_OUTAGE))) == []  # told as grouped
    assert settle(datetime.now(UTC)) == []  # 10 meters still out: still an incident
    assert incidents()[0][3] == "active"

    assert record(found(dark[2:3], Clear(rules.POWER_OUTAGE))) == []
    [resolved] = settle(datetime.now(UTC))  # 9 meters: no longer one
    assert query(
        "SELECT kind, to_status, grouped_into FROM alert_transitions WHERE id = %s", (resolved,)
    ) == [("resolved", "resolved", None)]
    assert incidents()[0][3] == "resolved"
    assert query(
        "SELECT status, auto_resolved, count(*) FROM alerts WHERE incident_id = %s "
        "GROUP BY status, auto_resolved",
        (incident_id,),
    ) == [("resolved", True, 12)]
    assert query(
        "SELECT count(*) FROM alert_transitions WHERE grouped_into = %s AND kind = 'resolved'",
        (incident_id,),
    ) == [(12,)]
    # The meters still silent are due again at once: the next sweep reports them, on their own.
    for meter in silent:
        assert get_redis().zscore(keys_of(meter).deadlines, f"{REGION}\n{meter}") == 0.0
    started = datetime.now(UTC)
    assert go_silent([]) == []  # held: two meters at once
    assert query(
        "SELECT meter_id, status, incident_id FROM alerts WHERE type = 'METER_OUTAGE' "
        "AND status = 'active' ORDER BY meter_id"
    ) == [(meter, "active", None) for meter in silent]
    assert len(settle(started + timedelta(seconds=31))) == 2


def test_resolving_an_incident_by_hand_resolves_its_alerts_with_audit(app, client, clean_state):
    dark = meters("DARK", 10)
    create_account(app, region=REGION, meters=tuple(dark))
    operator = create_account(app, role="OPERATOR", region=None)
    record(found(dark, OUTAGE))
    record(found(dark[:1], Clear(rules.POWER_OUTAGE)))  # one came back by itself
    [(incident_id, *_)] = incidents()
    member_ids = [
        alert_id
        for (alert_id,) in query(
            "SELECT id FROM alerts WHERE incident_id = %s ORDER BY id", (incident_id,)
        )
    ]

    answer = client.post(
        f"/api/v1/alerts/{incident_id}/resolve",
        headers=operator.headers,
        json={"note": "feeder 7 restored"},
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "resolved"
    assert answer.get_json()["meterCount"] == 10
    assert query(
        "SELECT status, auto_resolved, resolved_by, resolution_note, count(*) FROM alerts "
        "WHERE incident_id = %s GROUP BY 1, 2, 3, 4 ORDER BY 2, 5",
        (incident_id,),
    ) == [
        ("resolved", False, operator.id, "feeder 7 restored", 9),
        ("resolved", True, None, None, 1),
    ]
    assert query(
        "SELECT entity_id FROM audit_log WHERE action = 'alert.resolve' AND actor_id = %s "
        "ORDER BY entity_id::bigint",
        (operator.id,),
    ) == [(str(alert_id),) for alert_id in sorted([incident_id, *member_ids[1:]])]
    # Only the incident's resolution is told; its alerts' resolutions are grouped under it.
    assert query(
        "SELECT a.meter_id IS NULL, t.grouped_into IS NULL, t.actor_id, count(*) "
        "FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id "
        "WHERE t.kind = 'resolved' AND t.actor_id IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1",
    ) == [(False, False, operator.id, 9), (True, True, operator.id, 1)]
    assert query(
        "SELECT count(*) FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id "
        "WHERE a.incident_id = %s AND (t.dispatched_at IS NULL OR t.grouped_into <> %s)",
        (incident_id, incident_id),
    ) == [(0,)]


def test_bulk_resolving_an_incident_and_its_alerts_resolves_each_once(app, client, clean_state):
    dark, spiking = meters("DARK", 10), meters("SPIKE", 1)
    create_account(app, region=REGION, meters=(*dark, *spiking))
    operator = create_account(app, role="OPERATOR", region=None)
    record([*found(dark, OUTAGE), *found(spiking, Raise(rules.POWER_SPIKE, "medium", "spike"))])
    [(incident_id, *_)] = incidents()
    member = scalar("SELECT min(id) FROM alerts WHERE incident_id = %s", (incident_id,))
    spike = scalar("SELECT id FROM alerts WHERE type = 'POWER_SPIKE'")
    answer = client.post(
        "/api/v1/alerts/resolve",
        headers=operator.headers,
        json={"ids": [member, incident_id, spike, 999_999]},
    )
    assert answer.status_code == 200
    assert answer.get_json() == {
        "resolved": sorted([member, incident_id, spike]),
        "skipped": [999_999],
    }
    assert scalar("SELECT count(*) FROM alerts WHERE status <> 'resolved'") == 0
    assert (
        scalar(
            "SELECT count(*) FROM alert_transitions WHERE alert_id = %s AND kind = 'resolved'",
            (member,),
        )
        == 1
    )


def test_a_grouped_alert_acknowledged_by_hand_is_told_through_its_incident(
    app, client, clean_state
):
    dark = meters("DARK", 10)
    create_account(app, region=REGION, meters=tuple(dark))
    operator = create_account(app, role="OPERATOR", region=None)
    record(found(dark, OUTAGE))
    member = scalar("SELECT min(id) FROM alerts WHERE incident_id IS NOT NULL")
    answer = client.post(f"/api/v1/alerts/{member}/acknowledge", headers=operator.headers, json={})
    assert answer.status_code == 200
    [(incident_id, *_)] = incidents()
    assert answer.get_json()["incidentId"] == incident_id
    # The incident's creation only: the acknowledgement is grouped under it.
    assert undispatched() == [(incident_id, "created")]
    assert query(
        "SELECT grouped_into FROM alert_transitions WHERE alert_id = %s AND kind = 'acknowledged'",
        (member,),
    ) == [(incident_id,)]


# --------------------------------------------------------------------------- the API


def test_the_api_lists_an_incidents_meters_in_each_callers_scope(app, client, clean_state):
    mine, theirs = meters("MINE", 4), meters("THEIRS", 8)
    owner = create_account(app, region=REGION, meters=tuple(mine))
    other = create_account(app, region=REGION, meters=tuple(theirs))
    stranger = create_account(app, region=REGION)
    operator = create_account(app, role="OPERATOR", region=None)
    record(found([*mine, *theirs], OUTAGE))
    go_silent(mine[:1])
    [(incident_id, *_)] = incidents()
    url = f"/api/v1/alerts/{incident_id}/meters"

    first = client.get(f"{url}?pageSize=5", headers=operator.headers)
    assert first.status_code == 200
    body = first.get_json()
    assert (body["total"], body["page"], body["pageSize"]) == (12, 1, 5)
    assert [item["meterId"] for item in body["items"]] == [*mine, theirs[0]]
    assert body["items"][0]["alertTypes"] == [rules.METER_OUTAGE, rules.POWER_OUTAGE]
    assert body["items"][0]["isOpen"] is True
    last = client.get(f"{url}?page=3&pageSize=5", headers=operator.headers).get_json()
    assert [item["meterId"] for item in last["items"]] == theirs[-2:]

    own = client.get(url, headers=owner.headers).get_json()
    assert (own["total"], [item["meterId"] for item in own["items"]]) == (4, mine)
    assert client.get(url, headers=other.headers).get_json()["total"] == 8
    refused = client.get(url, headers=stranger.headers)
    assert refused.status_code == 404
    assert refused.get_json()["error"]["code"] == "NOT_FOUND"
    assert client.get(url).status_code == 401

    detail = client.get(f"/api/v1/alerts/{incident_id}", headers=operator.headers).get_json()
    assert (detail["type"], detail["meterCount"], detail["incidentId"]) == (
        rules.REGIONAL_OUTAGE,
        12,
        None,
    )
    grouped = client.get(
        f"/api/v1/alerts?incidentId={incident_id}&pageSize=500", headers=operator.headers
    ).get_json()
    assert grouped["total"] == 13  # 12 outages and one meter's silence
    assert {item["incidentId"] for item in grouped["items"]} == {incident_id}


def test_a_meter_alert_lists_its_own_meter_and_an_overload_none(app, client, clean_state):
    spiking = meters("SPIKE", 1)
    owner = create_account(app, region=REGION, meters=tuple(spiking))
    operator = create_account(app, role="OPERATOR", region=None)
    record(found(spiking, Raise(rules.POWER_SPIKE, "medium", "spike")))
    spike = scalar("SELECT id FROM alerts")
    overload = scalar(
        "INSERT INTO alerts (type, severity, status, region, message, last_seen_at) "
        "VALUES ('REGIONAL_OVERLOAD', 'high', 'active', %s, 'overload', now()) RETURNING id",
        (REGION,),
    )
    own = client.get(f"/api/v1/alerts/{spike}/meters", headers=owner.headers).get_json()
    assert [(item["meterId"], item["alertTypes"]) for item in own["items"]] == [
        (spiking[0], [rules.POWER_SPIKE])
    ]
    staff = client.get(f"/api/v1/alerts/{overload}/meters", headers=operator.headers)
    assert (staff.status_code, staff.get_json()["total"]) == (200, 0)
    assert client.get(f"/api/v1/alerts/{overload}/meters", headers=owner.headers).status_code == (
        404
    )


@pytest.mark.parametrize(
    ("query_string", "field"),
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=1000001", "page"),
        ("pageSize=0", "pageSize"),
        ("pageSize=501", "pageSize"),
        ("pageSize=-1", "pageSize"),
        ("pageSize=1e3", "pageSize"),
    ],
)
def test_bad_paging_on_the_meters_route_is_a_422_naming_the_field(
    app, client, clean_state, query_string, field
):
    operator = create_account(app, role="OPERATOR", region=None)
    answer = client.get(f"/api/v1/alerts/1/meters?{query_string}", headers=operator.headers)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]["query"]


@pytest.mark.parametrize(
    "alert_id", ["0", "-1", "abc", "1.5", "9223372036854775808", "99999999999999999999999", "%00"]
)
def test_bad_alert_ids_on_the_meters_route_are_not_found(app, client, clean_state, alert_id):
    operator = create_account(app, role="OPERATOR", region=None)
    answer = client.get(f"/api/v1/alerts/{alert_id}/meters", headers=operator.headers)
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "NOT_FOUND"
