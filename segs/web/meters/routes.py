"""Meter registry views. Reading data of a meter lives in segs.web.meter_data (same prefix)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from flask import current_app
from flask import url_for

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.redis_client import get_redis
from segs.services.grid import meters
from segs.web.actor import current_actor
from segs.web.field_names import answering_with
from segs.web.meters.schemas import MeterAssignmentSchema
from segs.web.meters.schemas import MeterCreateSchema
from segs.web.meters.schemas import MeterMoveSchema
from segs.web.meters.schemas import MeterPageSchema
from segs.web.meters.schemas import MeterQueryArgsSchema
from segs.web.meters.schemas import MeterSchema
from segs.web.meters.schemas import MoveSchema
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import roles_required

bp = Blueprint(
    "meters",
    __name__,
    url_prefix="/meters",
    description="The meter registry. A USER sees only the meters assigned to them (others "
    "answer 404); operators and admins see all; only admins register, retire and assign.",
)

# The request's and answer's names for the fields the registry's errors name by meaning.
API_FIELDS = {
    "meter_id": "meterId",
    "user_id": "userId",
    "owner_id": "ownerId",
    "effective_from": "effectiveFrom",
}


@bp.get("")
@roles_required()
@bp.arguments(MeterQueryArgsSchema, location="query")
@bp.response(200, MeterPageSchema)
def list_meters(args: dict[str, Any]) -> dict[str, Any]:
    """List the meters in the caller's scope, by meter id, with the total over all pages."""
    filters = meters.MeterFilters(
        region=args.get("region"),
        owner_id=args.get("owner_id"),
        status=args.get("status"),
        assigned=args.get("assigned"),
    )
    account = current_account()
    with session_scope() as session:
        page = meters.list_meters(
            session,
            account.id,
            account.role,
            filters,
            page=args["page"],
            page_size=args["page_size"],
        )
    return page_body(page.items, page.total, args)


@bp.post("")
@roles_required(ADMIN)
@bp.arguments(MeterCreateSchema)
@bp.response(201, MeterSchema, headers={"Location": {"schema": {"type": "string"}}})
@bp.alt_response(409, response="CONFLICT")
def create_meter(body: dict[str, Any]) -> tuple[meters.MeterView, dict[str, str]]:
    """Register a meter ahead of its first reading."""
    with answering_with(API_FIELDS), session_scope() as session:
        created = meters.create_meter(session, current_actor(), body["meter_id"], body["region"])
    return created, {"Location": url_for("meters.get_meter", meter_id=created.meter_id)}


@bp.get("/<meter_id>")
@roles_required()
@bp.response(200, MeterSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_meter(meter_id: str) -> meters.MeterView:
    """Show one meter in the caller's scope."""
    account = current_account()
    with session_scope() as session:
        return meters.get_meter(session, account.id, account.role, meter_id)


@bp.post("/<meter_id>/retire")
@roles_required(ADMIN)
@bp.response(200, MeterSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def retire_meter(meter_id: str) -> meters.MeterView:
    """Retire a meter: it keeps its owner and history but takes no new owner."""
    with session_scope() as session:
        return meters.retire_meter(session, get_redis(), current_actor(), meter_id)


@bp.post("/<meter_id>/move")
@roles_required(ADMIN)
@bp.arguments(MeterMoveSchema)
@bp.response(200, MoveSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def move_meter(body: dict[str, Any], meter_id: str) -> meters.MoveView:
    """Move a meter to another region from a 15-minute boundary on; readings before it still
    belong to the region it leaves. An assigned or retired meter does not move."""
    with answering_with(API_FIELDS), session_scope() as session:
        return meters.move_meter(
            session,
            get_redis(),
            current_actor(),
            meter_id,
            body["region"],
            body.get("effective_from"),
            now=datetime.now(UTC),
            max_future_skew_s=current_app.config["SEGS_SETTINGS"].max_future_skew_s,
        )


@bp.get("/<meter_id>/moves")
@roles_required()
@bp.response(200, MoveSchema(many=True))
@bp.alt_response(404, response="NOT_FOUND")
def list_moves(meter_id: str) -> list[meters.MoveView]:
    """A meter's moves between regions, oldest first."""
    account = current_account()
    with session_scope() as session:
        return meters.list_moves(session, account.id, account.role, meter_id)


@bp.put("/<meter_id>/assignment")
@roles_required(ADMIN)
@bp.arguments(MeterAssignmentSchema)
@bp.response(200, MeterSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def assign_meter(body: dict[str, Any], meter_id: str) -> meters.MeterView:
    """Assign a meter to a USER account of its region."""
    with answering_with(API_FIELDS), session_scope() as session:
        return meters.assign_meter(
            session, current_actor(), meter_id, body["user_id"], reassign=body["reassign"]
        )


@bp.delete("/<meter_id>/assignment")
@roles_required(ADMIN)
@bp.response(204)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def unassign_meter(meter_id: str) -> None:
    """Take a meter from its owner."""
    with session_scope() as session:
        meters.unassign_meter(session, current_actor(), meter_id)
