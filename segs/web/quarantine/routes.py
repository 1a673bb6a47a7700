"""Quarantined window views (operators and admins): list, show, and release after a fix."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.services.spine import quarantine
from segs.tasks.stores import get_window_store
from segs.web.actor import current_actor
from segs.web.parsing import Blueprint
from segs.web.quarantine.schemas import QuarantinedWindowPageSchema
from segs.web.quarantine.schemas import QuarantinedWindowSchema
from segs.web.quarantine.schemas import QuarantineQueryArgsSchema
from segs.web.schemas import page_body
from segs.web.security import roles_required

bp = Blueprint(
    "quarantine",
    __name__,
    url_prefix="/quarantined-windows",
    description="Region windows the flush could not write, set aside so every other window "
    "goes on. Release one after fixing its cause: the next flush writes it. Operators and "
    "admins; every release is audited.",
)


@bp.get("")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(QuarantineQueryArgsSchema, location="query")
@bp.response(200, QuarantinedWindowPageSchema)
def list_quarantined(args: dict[str, Any]) -> dict[str, Any]:
    """List quarantined windows, newest first."""
    with session_scope() as session:
        page = quarantine.list_quarantined(
            session, args.get("status"), page=args["page"], page_size=args["page_size"]
        )
    return page_body(page.items, page.total, args)


@bp.get("/<int:window_id>")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, QuarantinedWindowSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_quarantined(window_id: int) -> quarantine.QuarantinedView:
    """Show one quarantined window and its error."""
    with session_scope() as session:
        return quarantine.get_quarantined(session, window_id)


@bp.post("/<int:window_id>/release")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, QuarantinedWindowSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def release_quarantined(window_id: int) -> quarantine.QuarantinedView:
    """Hand the window back to the flush; its next run (every SEGS_FLUSH_INTERVAL_S) writes it,
    or quarantines it again if the cause is still there."""
    with session_scope() as session:
        return quarantine.release(
            session, get_window_store(), current_actor(), window_id, datetime.now(UTC)
        )
