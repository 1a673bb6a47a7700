"""Audit log view: who did what to which entity, and when."""

from __future__ import annotations

from typing import Any

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.services.accounts import audit
from segs.web.audit.schemas import AuditEntryPageSchema
from segs.web.audit.schemas import AuditQueryArgsSchema
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import roles_required

bp = Blueprint(
    "audit",
    __name__,
    url_prefix="/audit-log",
    description="Every change made by an admin or operator, newest first (admins only).",
)


@bp.get("")
@roles_required(ADMIN)
@bp.arguments(AuditQueryArgsSchema, location="query")
@bp.response(200, AuditEntryPageSchema)
def list_audit_entries(args: dict[str, Any]) -> dict[str, Any]:
    """List audit entries matching every given filter, newest first."""
    filters = audit.AuditFilters(
        actor_id=args.get("actor_id"),
        action=args.get("action"),
        entity_type=args.get("entity_type"),
        entity_id=args.get("entity_id"),
        since=args.get("since"),
        until=args.get("until"),
    )
    with session_scope() as session:
        page = audit.query(session, filters, page=args["page"], page_size=args["page_size"])
    return page_body(page.items, page.total, args)
