"""The audit log: who did what to which entity, and when, written with the change it describes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from operator import eq
from operator import ge
from operator import lt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.models import AuditEntry
from segs.models import User
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page
from segs.services.shared.paging import where_given


@dataclass(frozen=True)
class Actor:
    """Who acts: an account (from its token) and the address it called from; None is the CLI."""

    account: User | None
    ip: str | None = None

    @property
    def id(self) -> uuid.UUID | None:
        return self.account.id if self.account is not None else None


SYSTEM = Actor(None)


@dataclass(frozen=True)
class AuditFilters:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: object,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to *session*, so it commits or rolls back together with the change."""
    account = actor.account
    entry = AuditEntry(
        actor_id=account.id if account else None,
        actor_email=account.email if account else None,
        actor_role=account.role if account else None,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        details=details,
        ip_address=actor.ip,
    )
    session.add(entry)
    return entry


def query(
    session: Session, filters: AuditFilters, *, page: int, page_size: int
) -> Page[AuditEntry]:
    """Entries matching every given filter, newest first; *until* is exclusive."""
    statement = where_given(
        select(AuditEntry),
        [
            (AuditEntry.actor_id, eq, filters.actor_id),
            (AuditEntry.action, eq, filters.action),
            (AuditEntry.entity_type, eq, filters.entity_type),
            (AuditEntry.entity_id, eq, filters.entity_id),
            (AuditEntry.at, ge, filters.since),
            (AuditEntry.at, lt, filters.until),
        ],
    ).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    items, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page(items, total)
