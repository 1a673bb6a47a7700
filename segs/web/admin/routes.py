"""System statistics view."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.services.grid import stats
from segs.web.admin.schemas import SystemStatsSchema
from segs.web.parsing import Blueprint
from segs.web.security import roles_required

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    description="System statistics (admins only).",
)


@bp.get("/stats")
@roles_required(ADMIN)
@bp.response(200, SystemStatsSchema)
def system_stats() -> stats.SystemStats:
    """Count accounts, meters and the last day's readings; show each region's newest load."""
    with session_scope() as session:
        return stats.system_stats(session, datetime.now(UTC))
