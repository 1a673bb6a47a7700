"""Dead letter views (operators and admins): list, inspect, replay after a fix, discard."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from typing import Any

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.services.spine import dead_letters
from segs.tasks.readings import publish_batches
from segs.web.actor import current_actor
from segs.web.dead_letters.schemas import DeadLetterDetailSchema
from segs.web.dead_letters.schemas import DeadLetterPageSchema
from segs.web.dead_letters.schemas import DeadLetterQueryArgsSchema
from segs.web.dead_letters.schemas import DeadLetterSchema
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import roles_required

bp = Blueprint(
    "dead_letters",
    __name__,
    url_prefix="/dead-letters",
    description="Reading batches that kept failing for a reason other than an outage, set "
    "aside so the pipeline goes on. Replay one after fixing its cause (it folds exactly once), "
    "or discard it. Operators and admins; every replay and discard is audited.",
)


@bp.get("")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(DeadLetterQueryArgsSchema, location="query")
@bp.response(200, DeadLetterPageSchema)
def list_dead_letters(args: dict[str, Any]) -> dict[str, Any]:
    """List dead letters, newest first (without their readings)."""
    with session_scope() as session:
        page = dead_letters.list_dead_letters(
            session, args.get("status"), page=args["page"], page_size=args["page_size"]
        )
    return page_body(page.items, page.total, args)


@bp.get("/<uuid:batch_id>")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, DeadLetterDetailSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_dead_letter(batch_id: uuid.UUID) -> dead_letters.DeadLetterView:
    """Show one dead letter with its readings and its last error."""
    with session_scope() as session:
        return dead_letters.get_dead_letter(session, batch_id)


@bp.post("/<uuid:batch_id>/replay")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, DeadLetterSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def replay_dead_letter(batch_id: uuid.UUID) -> dead_letters.DeadLetterView:
    """Publish the batch again under its own id; if it fails again, it comes back here."""
    with session_scope() as session:
        return dead_letters.replay(
            session, current_actor(), batch_id, publish_batches, datetime.now(UTC)
        )


@bp.post("/<uuid:batch_id>/discard")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, DeadLetterSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def discard_dead_letter(batch_id: uuid.UUID) -> dead_letters.DeadLetterView:
    """Give up on the batch: its readings are not counted; the record stays."""
    with session_scope() as session:
        return dead_letters.discard(session, current_actor(), batch_id, datetime.now(UTC))
