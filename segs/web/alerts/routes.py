"""Alert views for operators and admins: list, read, acknowledge, resolve, statistics; and the
meters an alert is about (a regional incident's), which customers may read for their own."""

from __future__ import annotations

from typing import Any

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.models import Alert
from segs.services.alerts import incidents
from segs.services.alerts import lifecycle
from segs.services.alerts import queries
from segs.tasks.notifications import enqueue_transitions
from segs.web.actor import current_actor
from segs.web.alerts.schemas import AlertDetailSchema
from segs.web.alerts.schemas import AlertMeterPageSchema
from segs.web.alerts.schemas import AlertPageSchema
from segs.web.alerts.schemas import AlertQueryArgsSchema
from segs.web.alerts.schemas import AlertSchema
from segs.web.alerts.schemas import AlertStatsSchema
from segs.web.alerts.schemas import BulkResolveResultSchema
from segs.web.alerts.schemas import BulkResolveSchema
from segs.web.alerts.schemas import NoteSchema
from segs.web.alerts.schemas import StatsArgsSchema
from segs.web.parsing import Blueprint
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import roles_required

bp = Blueprint(
    "alerts",
    __name__,
    url_prefix="/alerts",
    description="Alerts: anomalies, outages, silent meters, regional overloads and regional "
    "incidents (many meters in one condition, grouped), with their lifecycle active -> "
    "acknowledged -> resolved (operators and admins). A customer may list the meters of an "
    "alert that are theirs.",
)


@bp.get("")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(AlertQueryArgsSchema, location="query")
@bp.response(200, AlertPageSchema)
def list_alerts(args: dict[str, Any]) -> dict[str, Any]:
    """List alerts matching every given filter, newest first."""
    filters = queries.AlertFilters(
        status=args.get("status"),
        severity=args.get("severity"),
        type=args.get("type"),
        region=args.get("region"),
        meter_id=args.get("meter_id"),
        since=args.get("since"),
        until=args.get("until"),
        incident_id=args.get("incident_id"),
    )
    with session_scope() as session:
        page = queries.list_alerts(session, filters, page=args["page"], page_size=args["page_size"])
    return page_body(page.items, page.total, args)


@bp.get("/stats")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(StatsArgsSchema, location="query")
@bp.response(200, AlertStatsSchema)
def alert_stats(args: dict[str, Any]) -> queries.AlertStats:
    """Counts by status, type and region; mean time to acknowledge and to resolve (seconds)."""
    with session_scope() as session:
        return queries.stats(session, args.get("since"), args.get("until"))


@bp.get("/<int:alert_id>")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, AlertDetailSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_alert(alert_id: int) -> dict[str, Any]:
    """One alert with its transition history."""
    with session_scope() as session:
        alert = queries.get_alert(session, alert_id)
        return _detail(alert, queries.transitions_of(session, alert_id))


@bp.get("/<int:alert_id>/meters")
@roles_required()
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, AlertMeterPageSchema)
@bp.alt_response(404, response="NOT_FOUND")
def alert_meters(args: dict[str, Any], alert_id: int) -> dict[str, Any]:
    """The meters an alert is about, by meter id: a regional incident's grouped meters (with
    their alerts' types, when the first was raised and whether one is open), a meter alert's
    own meter. A customer sees only their meters; an alert with none of theirs is not found."""
    account = current_account()
    with session_scope() as session:
        page = incidents.alert_meters(
            session,
            account.id,
            account.role,
            alert_id,
            page=args["page"],
            page_size=args["page_size"],
        )
    return page_body(page.items, page.total, args)


@bp.post("/<int:alert_id>/acknowledge")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(NoteSchema)
@bp.response(200, AlertSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def acknowledge_alert(body: dict[str, Any], alert_id: int) -> Alert:
    """Take an active alert on."""
    with session_scope() as session:
        alert, transitions = lifecycle.acknowledge(
            session, current_actor(), alert_id, body.get("note")
        )
    enqueue_transitions(transitions)
    return alert


@bp.post("/<int:alert_id>/resolve")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(NoteSchema)
@bp.response(200, AlertSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def resolve_alert(body: dict[str, Any], alert_id: int) -> Alert:
    """Close an open alert (acknowledging first is not required)."""
    with session_scope() as session:
        alert, transitions = lifecycle.resolve(session, current_actor(), alert_id, body.get("note"))
    enqueue_transitions(transitions)
    return alert


@bp.post("/resolve")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(BulkResolveSchema)
@bp.response(200, BulkResolveResultSchema)
def bulk_resolve(body: dict[str, Any]) -> dict[str, list[int]]:
    """Resolve many alerts at once; unknown or already resolved ids are reported as skipped."""
    with session_scope() as session:
        resolved, skipped, transitions = lifecycle.bulk_resolve(
            session, current_actor(), sorted(set(body["ids"])), body.get("note")
        )
    enqueue_transitions(transitions)
    return {"resolved": resolved, "skipped": skipped}


_ALERT_FIELDS = tuple(AlertSchema().fields)


def _detail(alert: Alert, transitions: list[Any]) -> dict[str, Any]:
    return {
        **{name: getattr(alert, name) for name in _ALERT_FIELDS},
        "transitions": transitions,
    }
