"""The alert store and lifecycle: raise (or count a repeat, or escalate), acknowledge, resolve.

The partial unique index uq_alerts_open (migration 0004) allows one open alert per
(type, region, meter_id). Raising is INSERT ... ON CONFLICT DO NOTHING, and on a conflict the
open row is locked and updated, so workers racing on one condition add exactly one row.

Every change of state or severity adds an alert_transitions row in the same transaction; the
functions return those rows' ids, which the caller hands to the notification queue after the
commit (services do not talk to Celery). Changes made by a person also go in the audit log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from operator import eq
from operator import ge
from operator import lt
from typing import Any

from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain import alerts as rules
from segs.errors import ConflictError
from segs.errors import NotFoundError
from segs.models import Alert
from segs.models import AlertTransition
from segs.models import MeterAssignment
from segs.models.base import BIGINT_MAX
from segs.services import audit
from segs.services.audit import Actor
from segs.services.paging import Page
from segs.services.paging import fetch_page
from segs.services.paging import where_given

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
    """Resolve the open alert of *condition* automatically, if there is one."""
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
    return [_transition(session, alert_id, rules.RESOLVED, status, rules.RESOLVED, severity)]


def apply_finding(
    session: Session, condition: Condition, finding: rules.Finding, now: datetime
) -> list[int]:
    """Raise or clear, as a domain rule decided."""
    if isinstance(finding, rules.Raise):
        return raise_alert(session, condition, finding.severity, finding.message, now)
    return clear_condition(session, condition, now)


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
    audit.record(session, actor, "alert.acknowledge", "alert", alert_id, {"note": note})
    session.flush()
    session.refresh(alert)
    return alert, [transition]


def resolve(
    session: Session, actor: Actor, alert_id: int, note: str | None
) -> tuple[Alert, list[int]]:
    """An operator closes an open alert.

    :raises NotFoundError: no such alert.
    :raises ConflictError: the alert is resolved already.
    """
    alert = _locked(session, alert_id)
    if alert.status == rules.RESOLVED:
        raise ConflictError(f"alert {alert_id} is resolved already", code="ALERT_RESOLVED")
    transition = _resolve_by(session, actor, alert, note)
    session.flush()
    session.refresh(alert)
    return alert, [transition]


def bulk_resolve(
    session: Session, actor: Actor, alert_ids: list[int], note: str | None
) -> tuple[list[int], list[int], list[int]]:
    """Resolve every open alert among *alert_ids*; return (resolved, skipped, transitions).

    Skipped ids are those already resolved or unknown; the rest resolve in one transaction.
    """
    alerts = session.scalars(
        select(Alert)
        .where(Alert.id.in_(alert_ids), Alert.status.in_(rules.OPEN_STATUSES))
        .order_by(Alert.id)
        .with_for_update()
    ).all()
    transitions = [_resolve_by(session, actor, alert, note) for alert in alerts]
    resolved = [alert.id for alert in alerts]
    skipped = sorted(set(alert_ids) - set(resolved))
    return resolved, skipped, transitions


def _resolve_by(session: Session, actor: Actor, alert: Alert, note: str | None) -> int:
    previous = alert.status
    alert.status = rules.RESOLVED
    alert.resolved_at = func.now()
    alert.resolved_by = actor.id
    alert.resolution_note = note
    audit.record(session, actor, "alert.resolve", "alert", alert.id, {"note": note})
    return _transition(
        session, alert.id, rules.RESOLVED, previous, rules.RESOLVED, alert.severity, actor.id, note
    )


# Alert ids are bigint: a larger id in a URL is simply not found (not a database error).


def _locked(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id, with_for_update=True) if alert_id <= BIGINT_MAX else None
    if alert is None:
        raise NotFoundError(f"alert {alert_id} not found")
    return alert


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class AlertFilters:
    status: str | None = None
    severity: str | None = None
    type: str | None = None
    region: str | None = None
    meter_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    owner_id: uuid.UUID | None = None


def list_alerts(
    session: Session, filters: AlertFilters, *, page: int, page_size: int
) -> Page[Alert]:
    """Alerts matching every given filter, newest first; *until* is exclusive."""
    statement = _filtered(select(Alert), filters).order_by(Alert.created_at.desc(), Alert.id.desc())
    items, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page(items, total)


def _filtered(statement: Select[Any], filters: AlertFilters) -> Select[Any]:
    statement = where_given(
        statement,
        [
            (Alert.status, eq, filters.status),
            (Alert.severity, eq, filters.severity),
            (Alert.type, eq, filters.type),
            (Alert.region, eq, filters.region),
            (Alert.meter_id, eq, filters.meter_id),
            (Alert.created_at, ge, filters.since),
            (Alert.created_at, lt, filters.until),
        ],
    )
    if filters.owner_id is not None:
        # A customer's alerts are those raised on their meters while they owned them.
        owned_then = select(MeterAssignment.id).where(
            MeterAssignment.meter_id == Alert.meter_id,
            MeterAssignment.user_id == filters.owner_id,
            MeterAssignment.assigned_from <= Alert.created_at,
            or_(
                MeterAssignment.assigned_to.is_(None),
                MeterAssignment.assigned_to > Alert.created_at,
            ),
        )
        statement = statement.where(owned_then.exists())
    return statement


def get_alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id) if alert_id <= BIGINT_MAX else None
    if alert is None:
        raise NotFoundError(f"alert {alert_id} not found")
    return alert


def transitions_of(session: Session, alert_id: int) -> list[AlertTransition]:
    return list(
        session.scalars(
            select(AlertTransition)
            .where(AlertTransition.alert_id == alert_id)
            .order_by(AlertTransition.id)
        )
    )


@dataclass(frozen=True)
class AlertStats:
    total: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    by_region: dict[str, int]
    mean_time_to_acknowledge_s: float | None
    mean_time_to_resolve_s: float | None


def stats(session: Session, since: datetime | None, until: datetime | None) -> AlertStats:
    """Counts by status, type and region, and the mean times from creation to acknowledgement
    and to resolution, over alerts created in [since, until)."""
    filters = AlertFilters(since=since, until=until)

    def counts(column: Any) -> dict[str, int]:
        rows = session.execute(_filtered(select(column, func.count()), filters).group_by(column))
        return {key: count for key, count in rows}

    def mean_seconds(end: Any) -> float | None:
        value = session.scalar(
            _filtered(
                select(func.avg(func.extract("epoch", end - Alert.created_at))), filters
            ).where(end.is_not(None))
        )
        return None if value is None else round(float(value), 3)

    by_status = counts(Alert.status)
    return AlertStats(
        total=sum(by_status.values()),
        by_status=by_status,
        by_type=counts(Alert.type),
        by_region=counts(Alert.region),
        mean_time_to_acknowledge_s=mean_seconds(Alert.acknowledged_at),
        mean_time_to_resolve_s=mean_seconds(Alert.resolved_at),
    )


def recent_loads(session: Session, region: str, window_start: datetime, windows: int) -> list[Any]:
    """The region's 1m loads of the *windows* windows ending with *window_start*, oldest first;
    shorter when a window in between has no row (the streak is broken)."""
    starts = [window_start - timedelta(minutes=back) for back in range(windows - 1, -1, -1)]
    rows: dict[datetime, Any] = dict(
        session.execute(
            text(
                "SELECT window_start, load_percentage FROM regional_aggregates_1m "
                "WHERE region = :region AND window_start = ANY(:starts)"
            ),
            {"region": region, "starts": starts},
        ).all()
    )
    loads: list[Any] = []
    for start in starts:
        if start not in rows:
            loads = []  # a gap: only windows after it are consecutive
            continue
        loads.append(rows[start])
    return loads


def has_open(session: Session, condition: Condition) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(
                Alert.type == condition.type,
                Alert.region == condition.region,
                Alert.meter_id.is_(None)
                if condition.meter_id is None
                else Alert.meter_id == condition.meter_id,
                Alert.status.in_(rules.OPEN_STATUSES),
            )
        )
        or 0
    ) > 0
