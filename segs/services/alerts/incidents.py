"""Regional incidents in the store: grouping the meter alerts a transaction opened, releasing
those held past their window, resolving the incidents that cleared, and listing their meters.

The rule (when an incident forms, what waits, when it clears) is segs.domain.incidents'. An
incident is an alert of its own type without a meter, so one open incident per type and region
comes from uq_alerts_open, and acknowledging, resolving and notifying it are those of any alert.

Every decision for one incident type and region runs under its grouping lock
(segs.services.alerts.lifecycle.lock_group), taken before any alert row: two workers storing
findings of one outage at once would otherwise each count only their own alerts, and neither form
it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain import alerts as rules
from segs.domain.incidents import GROUPED_TYPES
from segs.domain.incidents import INCIDENT_TYPES
from segs.domain.incidents import Grouping
from segs.domain.incidents import IncidentRule
from segs.domain.incidents import conditions_of
from segs.domain.incidents import decide
from segs.domain.incidents import incident_message
from segs.domain.incidents import incident_severity
from segs.domain.incidents import incident_type_of
from segs.errors import NotFoundError
from segs.models import Alert
from segs.models import AlertTransition
from segs.models import Meter
from segs.services.accounts import is_staff
from segs.services.alerts.lifecycle import Condition
from segs.services.alerts.lifecycle import clear_condition
from segs.services.alerts.lifecycle import lock_group
from segs.services.alerts.lifecycle import raise_alert
from segs.services.alerts.lifecycle import route_transitions
from segs.services.alerts.queries import get_alert
from segs.services.alerts.queries import owned_when_raised
from segs.services.shared.paging import Page
from segs.services.spine import DetectionStore

Group = tuple[str, str]  # (incident type, region)


def lock_groups(session: Session, rule: IncidentRule, conditions: Iterable[Group]) -> None:
    """Take the grouping locks of the incidents these (condition type, region) pairs may
    touch, in one order, before the transaction raises or clears any of them."""
    if not rule.enabled:
        return
    groups = {
        (incident_type, region)
        for condition_type, region in conditions
        if (incident_type := incident_type_of(condition_type)) is not None
    }
    for incident_type, region in sorted(groups):
        lock_group(session, incident_type, region)


def group_opened(
    session: Session, rule: IncidentRule, transition_ids: list[int], now: datetime
) -> list[int]:
    """Group the meter alerts these transitions opened (the caller took lock_groups first):
    join an open incident, form one, or hold them for the window. Return the transitions to
    hand to the notification queue, the incidents' own among them."""
    made = list(transition_ids)
    if rule.enabled and transition_ids:
        for group, opened in sorted(_opened_by_group(session, transition_ids).items()):
            made.extend(_group(session, rule, group, opened, now))
    return route_transitions(session, made)


_OPENED = text(
    """
    SELECT a.id, a.type, a.region FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id
    WHERE t.id = ANY(:ids) AND t.kind = 'created' AND a.meter_id IS NOT NULL
      AND a.type = ANY(:types)
    """
)


def _opened_by_group(session: Session, transition_ids: list[int]) -> dict[Group, list[int]]:
    session.flush()
    opened: dict[Group, list[int]] = {}
    rows = session.execute(_OPENED, {"ids": transition_ids, "types": list(GROUPED_TYPES)})
    for alert_id, condition_type, region in rows:
        incident_type = incident_type_of(condition_type)
        assert incident_type is not None
        opened.setdefault((incident_type, region), []).append(alert_id)
    return opened


@dataclass(frozen=True, slots=True)
class _Peer:
    alert_id: int
    meter_id: str
    severity: str
    is_open: bool


# Alerts of the group's conditions raised within the window and in no incident yet.
_PEERS = text(
    """
    SELECT id, meter_id, severity, status IN ('active', 'acknowledged') FROM alerts
    WHERE region = :region AND type = ANY(:types) AND meter_id IS NOT NULL
      AND incident_id IS NULL AND created_at > :since
    """
)


def _group(
    session: Session, rule: IncidentRule, group: Group, opened: list[int], now: datetime
) -> list[int]:
    incident_type, region = group
    incident = _open_incident(session, incident_type, region)
    peers: list[_Peer] = []
    if incident is None:
        since = now - timedelta(seconds=rule.window_s)
        peers = [
            _Peer(*row)
            for row in session.execute(
                _PEERS,
                {"region": region, "types": list(conditions_of(incident_type)), "since": since},
            )
        ]
    decision = decide(
        rule,
        incident_open=incident is not None,
        recent_meters=len({peer.meter_id for peer in peers}),
        recent_open_meters=len({peer.meter_id for peer in peers if peer.is_open}),
        # The region's size matters only to form one.
        region_meters=_region_meters(session, region) if incident is None else 0,
    )
    if decision is Grouping.HOLD:
        session.execute(
            text("UPDATE alerts SET notify_after = created_at + :wait WHERE id = ANY(:ids)"),
            {"ids": opened, "wait": timedelta(seconds=rule.window_s)},
        )
        return []
    if decision is Grouping.NOTIFY:
        return []
    condition = Condition(incident_type, region, None)
    made: list[int] = []
    if incident is None:
        meters = len({peer.meter_id for peer in peers})
        made = raise_alert(
            session,
            condition,
            incident_severity(peer.severity for peer in peers),
            incident_message(incident_type, region, meters),
            now,
        )
        incident = _open_incident(session, incident_type, region)
        assert incident is not None
        _attach(session, incident.id, [peer.alert_id for peer in peers])
    else:
        _attach(session, incident.id, opened)
        meters, severity = _members(session, incident.id)
        # A repeat of the regional condition: counted, and escalated if a joiner is more severe.
        made = raise_alert(
            session, condition, severity, incident_message(incident_type, region, meters), now
        )
    incident.meter_count = meters
    incident.message = incident_message(incident_type, region, meters)
    return made


def _open_incident(session: Session, incident_type: str, region: str) -> Alert | None:
    return session.scalars(
        select(Alert)
        .where(
            Alert.type == incident_type,
            Alert.region == region,
            Alert.meter_id.is_(None),
            Alert.status.in_(rules.OPEN_STATUSES),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _region_meters(session: Session, region: str) -> int:
    """The region's registered meters that are not retired."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Meter)
            .where(Meter.region == region, Meter.retired_at.is_(None))
        )
        or 0
    )


def _attach(session: Session, incident_id: int, alert_ids: list[int]) -> None:
    """Group *alert_ids* under the incident: no longer held, and their transitions still in the
    outbox leave it as grouped (the incident's notification stands for them)."""
    session.flush()
    session.execute(
        text("UPDATE alerts SET incident_id = :incident, notify_after = NULL WHERE id = ANY(:ids)"),
        {"incident": incident_id, "ids": alert_ids},
    )
    session.execute(
        text(
            "UPDATE alert_transitions SET dispatched_at = clock_timestamp(), "
            "grouped_into = :incident WHERE alert_id = ANY(:ids) AND dispatched_at IS NULL"
        ),
        {"incident": incident_id, "ids": alert_ids},
    )


def _members(session: Session, incident_id: int) -> tuple[int, str]:
    """How many meters the incident groups, and the highest severity among its alerts."""
    meters = session.scalar(
        select(func.count(func.distinct(Alert.meter_id))).where(Alert.incident_id == incident_id)
    )
    severities = session.scalars(
        select(Alert.severity).where(Alert.incident_id == incident_id).distinct()
    )
    return meters or 0, incident_severity(severities)


# --------------------------------------------------------------------------- the alert sweep


def release_held(session: Session, now: datetime) -> list[int]:
    """Release the alerts whose window passed without an incident forming; return their
    transitions still in the outbox, to be told one by one."""
    held = session.execute(
        select(Alert.type, Alert.region).where(Alert.notify_after <= now).distinct()
    ).all()
    groups = sorted({(incident_type_of(condition_type), region) for condition_type, region in held})
    released: list[int] = []
    for incident_type, region in groups:
        assert incident_type is not None
        lock_group(session, incident_type, region)
        released.extend(
            session.scalars(
                text(
                    "UPDATE alerts SET notify_after = NULL WHERE notify_after <= :now "
                    "AND region = :region AND type = ANY(:types) RETURNING id"
                ),
                {"now": now, "region": region, "types": list(conditions_of(incident_type))},
            )
        )
    return list(
        session.scalars(
            select(AlertTransition.id)
            .where(AlertTransition.alert_id.in_(released), AlertTransition.dispatched_at.is_(None))
            .order_by(AlertTransition.id)
        )
    )


def resolve_cleared(
    session: Session, store: DetectionStore, rule: IncidentRule, now: datetime
) -> list[int]:
    """Resolve every incident with fewer meters still in the condition than its region's
    threshold, and the alerts still open under it; return the transitions to dispatch.

    A meter of it still silent gets its silence deadline back, due at once, so the next sweep
    reports it again, on its own (a meter still reading no power or a drop is found again at
    its next reading).
    """
    incidents = session.execute(
        select(Alert.id, Alert.type, Alert.region)
        .where(Alert.type.in_(INCIDENT_TYPES), Alert.status.in_(rules.OPEN_STATUSES))
        .order_by(Alert.type, Alert.region)
    ).all()
    made: list[int] = []
    for incident_id, incident_type, region in incidents:
        lock_group(session, incident_type, region)
        still = session.execute(
            select(Alert.meter_id, Alert.type).where(
                Alert.incident_id == incident_id, Alert.status.in_(rules.OPEN_STATUSES)
            )
        ).all()
        meters_in_condition = len({meter_id for meter_id, _ in still})
        if not rule.has_cleared(meters_in_condition, _region_meters(session, region)):
            continue
        made.extend(clear_condition(session, Condition(incident_type, region, None), now))
        silent = {meter_id for meter_id, kind in still if meter_id and kind == rules.METER_OUTAGE}
        # Due at the epoch: before any sweep's threshold, whatever the downtime.
        store.restore_deadlines([(meter_id, region, 0.0) for meter_id in sorted(silent)])
    return route_transitions(session, made)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class AlertMeter:
    """A meter an alert is about, and the alerts it has there (an incident's grouped ones)."""

    meter_id: str
    alert_types: list[str]
    first_raised_at: datetime
    is_open: bool


def alert_meters(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    alert_id: int,
    *,
    page: int,
    page_size: int,
) -> Page[AlertMeter]:
    """The meters an alert is about, by meter id: an incident's grouped meters, a meter alert's
    own meter, none for an overload. A USER sees only the meters they owned when each alert was
    raised, as with their alerts.

    :raises NotFoundError: no such alert, or (for a USER) none of its meters is theirs, so
        other customers' incidents and alerts do not leak.
    """
    alert = get_alert(session, alert_id)
    statement = select(
        Alert.meter_id,
        func.array_agg(func.distinct(Alert.type)),
        func.min(Alert.created_at),
        func.bool_or(Alert.status.in_(rules.OPEN_STATUSES)),
    ).where(
        Alert.meter_id.is_not(None),
        or_(Alert.incident_id == alert.id, Alert.id == alert.id),
    )
    if not is_staff(role):
        statement = statement.where(owned_when_raised(account_id))
    statement = statement.group_by(Alert.meter_id)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    if total == 0 and not is_staff(role):
        raise NotFoundError(f"alert {alert_id} not found")
    rows = session.execute(
        statement.order_by(Alert.meter_id).limit(page_size).offset((page - 1) * page_size)
    ).all()
    return Page(
        [
            AlertMeter(meter_id, sorted(kinds), first_raised_at, is_open)
            for meter_id, kinds, first_raised_at, is_open in rows
        ],
        total,
    )
