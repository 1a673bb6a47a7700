"""The alert store and lifecycle: raise (or count a repeat, or escalate), acknowledge, resolve.

The partial unique index uq_alerts_open (migration 0004) allows one open alert per
(type, region, meter_id). Raising is INSERT ... ON CONFLICT DO NOTHING, and on a conflict the
open row is locked and updated, so workers racing on one condition add exactly one row.

Every change of state or severity adds an alert_transitions row in the same transaction; the
functions return those rows' ids, which the caller hands to the notification queue after the
commit (services do not talk to Celery). Changes made by a person also go in the audit log.

A meter alert grouped under a regional incident (segs.services.alerts.incidents) is told through the
incident: its transitions leave the outbox as grouped, and resolving the incident resolves it.
One held for an incident to form keeps its transitions in the outbox until it is released
(route_transitions says which transitions to hand to the queue).

Reading alerts (lists, statistics) is segs.services.alerts.queries'.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain import alerts as rules
from segs.domain.incidents import INCIDENT_TYPES
from segs.domain.incidents import is_incident
from segs.errors import ConflictError
from segs.errors import NotFoundError
from segs.models import Alert
from segs.models import AlertTransition
from segs.models.base import BIGINT_MAX
from segs.services.accounts import Actor
from segs.services.accounts import record_audit

_INSERT_OPEN = text(
    """
    INSERT INTO alerts (type, severity, status, region, meter_id, message, occurrence_count,
                        created_at, last_seen_at)
    VALUES (:type, :severity, 'active', :region, :meter_id, :message, 1, :now, :now)
    ON CONFLICT (type, region, meter_id) WHERE status IN ('active', 'acknowledged') DO NOTHING
    RETURNING id
    """
)

_LOCK_OPEN = text(
    """
    SELECT id, severity, status FROM alerts
    WHERE type = :type AND region = :region AND meter_id IS NOT DISTINCT FROM :meter_id
      AND status IN ('active', 'acknowledged')
    FOR UPDATE
    """
)


@dataclass(frozen=True, slots=True)
class Condition:
    """Where a condition holds: a meter's, or a region's when meter_id is None."""

    type: str
    region: str
    meter_id: str | None


def raise_alert(
    session: Session, condition: Condition, severity: str, message: str, now: datetime
) -> list[int]:
    """Open an alert for *condition*, or count a repeat of the open one (escalating it if
    *severity* is higher). Returns the ids of the transitions made (none for a plain repeat)."""
    params = {
        "type": condition.type,
        "region": condition.region,
        "meter_id": condition.meter_id,
        "severity": severity,
        "message": message,
        "now": now,
    }
    while True:
        created = session.execute(_INSERT_OPEN, params).scalar_one_or_none()
        if created is not None:
            return [_transition(session, created, rules.CREATED, None, rules.ACTIVE, severity)]
        existing = session.execute(_LOCK_OPEN, params).one_or_none()
        if existing is not None:
            break
        # The open alert was resolved between the two statements: try to open one again.
    alert_id, current, status = existing
    alert = session.get(Alert, alert_id)
    assert alert is not None
    alert.occurrence_count += 1
    alert.last_seen_at = now
    if rules.severity_rank(severity) <= rules.severity_rank(current):
        return []
    alert.severity = severity
    alert.message = message
    return [_transition(session, alert_id, rules.ESCALATED, status, status, severity)]


def clear_condition(session: Session, condition: Condition, now: datetime) -> list[int]:
    """Resolve the open alert of *condition* automatically, if there is one (an incident with
    the alerts still open under it)."""
    row = session.execute(
        _LOCK_OPEN,
        {"type": condition.type, "region": condition.region, "meter_id": condition.meter_id},
    ).one_or_none()
    if row is None:
        return []
    alert_id, severity, status = row
    alert = session.get(Alert, alert_id)
    assert alert is not None
    alert.status = rules.RESOLVED
    alert.resolved_at = now
    alert.auto_resolved = True
    transition = _transition(session, alert_id, rules.RESOLVED, status, rules.RESOLVED, severity)
    if is_incident(alert.type):
        _resolve_members(session, alert_id)
    return [transition]


def apply_finding(
    session: Session, condition: Condition, finding: rules.Finding, now: datetime
) -> list[int]:
    """Raise or clear, as a domain rule decided."""
    if isinstance(finding, rules.Raise):
        return raise_alert(session, condition, finding.severity, finding.message, now)
    return clear_condition(session, condition, now)


# Members resolve as their incident did (when, by whom, the note, automatically or not); their
# transitions leave the outbox as grouped: the incident's notification stands for them.
_RESOLVE_MEMBERS = text(
    """
    WITH incident AS (
        SELECT resolved_at, resolved_by, resolution_note, auto_resolved FROM alerts
        WHERE id = :incident
    ), members AS (
        SELECT id, status FROM alerts
        WHERE incident_id = :incident AND status IN ('active', 'acknowledged')
        ORDER BY id
        FOR UPDATE
    ), resolved AS (
        UPDATE alerts a
        SET status = 'resolved', resolved_at = i.resolved_at, resolved_by = i.resolved_by,
            resolution_note = i.resolution_note, auto_resolved = i.auto_resolved
        FROM members m, incident i
        WHERE a.id = m.id
        RETURNING a.id, m.status AS previous, a.severity, i.resolved_by, i.resolution_note
    )
    INSERT INTO alert_transitions (alert_id, kind, from_status, to_status, severity, actor_id,
                                   note, dispatched_at, grouped_into)
    SELECT id, 'resolved', previous, 'resolved', severity, resolved_by, resolution_note,
           clock_timestamp(), :incident
    FROM resolved
    ORDER BY id
    RETURNING alert_id
    """
)


def _resolve_members(session: Session, incident_id: int) -> list[int]:
    """Resolve the alerts still open under an incident just resolved; return their ids."""
    session.flush()
    return list(session.scalars(_RESOLVE_MEMBERS, {"incident": incident_id}))


def lock_group(session: Session, incident_type: str, region: str) -> None:
    """Serialize, until the commit, the grouping of *incident_type* in *region*: deciding
    whether an incident forms counts alerts that other transactions may be adding. Take it
    before any alert row lock, so two transactions never wait for each other's."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"segs:incident:{incident_type}:{region}"},
    )


def _lock_incident_groups(session: Session, alert_ids: list[int]) -> None:
    """The grouping locks of the incidents among *alert_ids*, in one order (see lock_group)."""
    groups = session.execute(
        select(Alert.type, Alert.region)
        .where(
            Alert.id.in_([alert_id for alert_id in alert_ids if alert_id <= BIGINT_MAX]),
            Alert.type.in_(INCIDENT_TYPES),
        )
        .distinct()
        .order_by(Alert.type, Alert.region)
    ).all()
    for incident_type, region in groups:
        lock_group(session, incident_type, region)


_GROUP_TRANSITIONS = text(
    """
    UPDATE alert_transitions t
    SET dispatched_at = clock_timestamp(), grouped_into = a.incident_id
    FROM alerts a
    WHERE t.id = ANY(:ids) AND a.id = t.alert_id AND a.incident_id IS NOT NULL
      AND t.dispatched_at IS NULL
    """
)

_TO_DISPATCH = text(
    """
    SELECT t.id FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id
    WHERE t.id = ANY(:ids) AND t.dispatched_at IS NULL AND a.notify_after IS NULL
    ORDER BY t.id
    """
)


def route_transitions(session: Session, transition_ids: list[int]) -> list[int]:
    """Of transitions just made, those to hand to the notification queue now. Those of alerts
    grouped under an incident leave the outbox as grouped; those of alerts held for an incident
    to form wait for their release (segs.services.alerts.incidents.release_held)."""
    if not transition_ids:
        return []
    session.flush()
    session.execute(_GROUP_TRANSITIONS, {"ids": transition_ids})
    return list(session.scalars(_TO_DISPATCH, {"ids": transition_ids}))


def _transition(
    session: Session,
    alert_id: int,
    kind: str,
    from_status: str | None,
    to_status: str,
    severity: str,
    actor_id: uuid.UUID | None = None,
    note: str | None = None,
) -> int:
    row = AlertTransition(
        alert_id=alert_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        severity=severity,
        actor_id=actor_id,
        note=note,
    )
    session.add(row)
    session.flush()
    return row.id


# --------------------------------------------------------------------------- people's actions


def acknowledge(
    session: Session, actor: Actor, alert_id: int, note: str | None
) -> tuple[Alert, list[int]]:
    """An operator takes an active alert on.

    :raises NotFoundError: no such alert.
    :raises ConflictError: the alert is acknowledged or resolved already.
    """
    alert = _locked(session, alert_id)
    if alert.status != rules.ACTIVE:
        raise ConflictError(f"alert {alert_id} is {alert.status}", code="ALERT_NOT_ACTIVE")
    alert.status = rules.ACKNOWLEDGED
    alert.acknowledged_at = func.now()
    alert.acknowledged_by = actor.id
    alert.acknowledgement_note = note
    transition = _transition(
        session,
        alert_id,
        rules.ACKNOWLEDGED,
        rules.ACTIVE,
        rules.ACKNOWLEDGED,
        alert.severity,
        actor.id,
        note,
    )
    record_audit(session, actor, "alert.acknowledge", "alert", alert_id, {"note": note})
    session.flush()
    session.refresh(alert)
    return alert, route_transitions(session, [transition])


def resolve(
    session: Session, actor: Actor, alert_id: int, note: str | None
) -> tuple[Alert, list[int]]:
    """An operator closes an open alert (an incident with the alerts still open under it).

    :raises NotFoundError: no such alert.
    :raises ConflictError: the alert is resolved already.
    """
    _lock_incident_groups(session, [alert_id])
    alert = _locked(session, alert_id)
    if alert.status == rules.RESOLVED:
        raise ConflictError(f"alert {alert_id} is resolved already", code="ALERT_RESOLVED")
    transition, _ = _resolve_by(session, actor, alert, note)
    session.flush()
    session.refresh(alert)
    return alert, route_transitions(session, [transition])


def bulk_resolve(
    session: Session, actor: Actor, alert_ids: list[int], note: str | None
) -> tuple[list[int], list[int], list[int]]:
    """Resolve every open alert among *alert_ids*; return (resolved, skipped, transitions).

    Skipped ids are those already resolved or unknown; the rest resolve in one transaction. An
    incident resolves the alerts still open under it too; those of them asked for count as
    resolved.
    """
    _lock_incident_groups(session, alert_ids)
    alerts = session.scalars(
        select(Alert)
        .where(Alert.id.in_(alert_ids), Alert.status.in_(rules.OPEN_STATUSES))
        .order_by(Alert.id)
        .with_for_update()
    ).all()
    transitions: list[int] = []
    done: set[int] = set()
    # Incidents first: an alert asked for that one of them groups is resolved with it, once.
    for alert in sorted(alerts, key=lambda alert: not is_incident(alert.type)):
        if alert.id in done:
            continue
        transition, members = _resolve_by(session, actor, alert, note)
        transitions.append(transition)
        done.update([alert.id, *members])
    resolved = sorted(done & set(alert_ids))
    skipped = sorted(set(alert_ids) - done)
    return resolved, skipped, route_transitions(session, transitions)


def _resolve_by(
    session: Session, actor: Actor, alert: Alert, note: str | None
) -> tuple[int, list[int]]:
    """Resolve *alert* for *actor*; return its transition and the ids of the alerts resolved
    with it (an incident's), each audited as a resolve by the same person."""
    previous = alert.status
    alert.status = rules.RESOLVED
    alert.resolved_at = func.now()
    alert.resolved_by = actor.id
    alert.resolution_note = note
    record_audit(session, actor, "alert.resolve", "alert", alert.id, {"note": note})
    transition = _transition(
        session, alert.id, rules.RESOLVED, previous, rules.RESOLVED, alert.severity, actor.id, note
    )
    if not is_incident(alert.type):
        return transition, []
    members = _resolve_members(session, alert.id)
    details = {"note": note, "incident": alert.id}
    for member_id in members:
        record_audit(session, actor, "alert.resolve", "alert", member_id, details)
    return transition, members


# Alert ids are bigint: a larger id in a URL is simply not found (not a database error).


def _locked(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id, with_for_update=True) if alert_id <= BIGINT_MAX else None
    if alert is None:
        raise NotFoundError(f"alert {alert_id} not found")
    return alert
