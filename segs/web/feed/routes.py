"""Tickets for the live feed, issued by the API to a signed-in caller."""

from __future__ import annotations

from flask import current_app

from segs.config import Settings
from segs.redis_client import get_redis
from segs.services.alerts import feed_access
from segs.web.feed.schemas import FeedTicketSchema
from segs.web.parsing import Blueprint
from segs.web.security import current_account
from segs.web.security import roles_required

bp = Blueprint(
    "feed_tickets",
    __name__,
    url_prefix="/feed",
    description="Tickets for the live feed (GET /api/v1/feed on the feed process), for clients "
    "that cannot send an Authorization header, such as a browser's EventSource.",
)


@bp.post("/tickets")
@roles_required()
@bp.response(201, FeedTicketSchema)
def issue_ticket() -> dict[str, object]:
    """A single-use ticket to open the caller's live feed, valid SEGS_FEED_TICKET_TTL_S."""
    settings: Settings = current_app.config["SEGS_SETTINGS"]
    ticket = feed_access.issue_ticket(get_redis(), current_account().id, settings.feed_ticket_ttl_s)
    return {"ticket": ticket, "expires_in": settings.feed_ticket_ttl_s}
