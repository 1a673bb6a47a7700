"""Reading alerts: the filtered list (a customer's own among them), one alert and its
transitions, statistics, and whether a condition has an open alert. The lifecycle
(segs.services.alerts.lifecycle) is what changes them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from operator import eq
from operator import ge
from operator import lt
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain import alerts as rules
from segs.errors import NotFoundError
from segs.models import Alert
from segs.models import AlertTransition
from segs.models import MeterAssignment
from segs.models.base import BIGINT_MAX
from segs.services.alerts.lifecycle import Condition
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page
from segs.services.shared.paging import where_given


@dataclass(frozen=True)
class AlertFilters:
    status: str | None = None
    severity: str | None = None
    type: str | None = None
    region: str | None = None
    meter_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    incident_id: int | None = None
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
            (Alert.incident_id, eq, filters.incident_id),
        ],
    )
    if filters.owner_id is not None:
        statement = statement.where(owned_when_raised(filters.owner_id))
    return statement


def owned_when_raised(owner_id: uuid.UUID) -> ColumnElement[bool]:
    """A customer's alerts: those raised on their meters while they owned them."""
    return (
        select(MeterAssignment.id)
        .where(
            MeterAssignment.meter_id == Alert.meter_id,
            MeterAssignment.user_id == owner_id,
            MeterAssignment.assigned_from <= Alert.created_at,
            or_(
                MeterAssignment.assigned_to.is_(None),
                MeterAssignment.assigned_to > Alert.created_at,
            ),
        )
        .exists()
    )


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
