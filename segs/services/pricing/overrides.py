"""Admin overrides: a fixed price for a region over a validity window, and which one is in force.

Overrides are never deleted, only marked removed, so the price history can always name the
override it recorded. Two live overrides of a region never overlap (an exclusion constraint);
every change is audited.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import TariffOverride
from segs.models.base import BIGINT_MAX
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.pricing.rules import get_region
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page


def in_force(region: str, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The conditions an override of *region* meets when it sets the price at *now*."""
    return (
        TariffOverride.region == region,
        TariffOverride.removed_at.is_(None),
        TariffOverride.valid_from <= now,
        TariffOverride.valid_to > now,
    )


def list_overrides(
    session: Session, region: str | None, include_removed: bool, *, page: int, page_size: int
) -> Page[TariffOverride]:
    statement = select(TariffOverride)
    if region is not None:
        statement = statement.where(TariffOverride.region == region)
    if not include_removed:
        statement = statement.where(TariffOverride.removed_at.is_(None))
    statement = statement.order_by(TariffOverride.valid_from.desc(), TariffOverride.id.desc())
    items, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page(items, total)


def get_override(session: Session, override_id: int) -> TariffOverride:
    # Ids beyond bigint are simply not there (PostgreSQL would refuse to compare them).
    row = session.get(TariffOverride, override_id) if 0 < override_id <= BIGINT_MAX else None
    if row is None:
        raise NotFoundError(f"override {override_id} not found")
    return row


def _check_window(valid_from: datetime, valid_to: datetime, now: datetime) -> None:
    if valid_to <= valid_from:
        raise InvalidInputError(
            "validTo must be after validFrom", {"valid_to": ["after validFrom"]}
        )
    if valid_to <= now:
        raise InvalidInputError("validTo must be in the future", {"valid_to": ["in the future"]})


def _flush_override(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError("another override of this region overlaps that window") from exc


def create_override(
    session: Session,
    actor: Actor,
    region: str,
    price: Decimal,
    valid_from: datetime,
    valid_to: datetime,
    reason: str,
    now: datetime,
) -> TariffOverride:
    get_region(session, region)
    _check_window(valid_from, valid_to, now)
    row = TariffOverride(
        region=region,
        price_per_kwh=price,
        valid_from=valid_from,
        valid_to=valid_to,
        reason=reason,
        created_by=actor.id,
    )
    session.add(row)
    _flush_override(session)
    record_audit(session, actor, "tariff_override.create", "tariff_override", row.id, _details(row))
    return row


def update_override(
    session: Session, actor: Actor, override_id: int, changes: dict[str, Any], now: datetime
) -> TariffOverride:
    row = get_override(session, override_id)
    if row.removed_at is not None:
        raise ConflictError(f"override {override_id} was removed")
    for name in ("price_per_kwh", "valid_from", "valid_to", "reason"):
        if name in changes:
            setattr(row, name, changes[name])
    _check_window(row.valid_from, row.valid_to, now)
    _flush_override(session)
    record_audit(session, actor, "tariff_override.update", "tariff_override", row.id, _details(row))
    return row


def remove_override(
    session: Session, actor: Actor, override_id: int, now: datetime
) -> TariffOverride:
    """Mark the override removed; the price history keeps what it already recorded."""
    get_override(session, override_id)
    result = session.execute(
        update(TariffOverride)
        .where(TariffOverride.id == override_id, TariffOverride.removed_at.is_(None))
        .values(removed_at=now, removed_by=actor.id)
        .returning(TariffOverride.id)
    )
    if result.scalar() is None:
        raise ConflictError(f"override {override_id} was already removed")
    row = get_override(session, override_id)
    session.refresh(row)
    record_audit(session, actor, "tariff_override.remove", "tariff_override", row.id, _details(row))
    return row


def _details(row: TariffOverride) -> dict[str, Any]:
    return {
        "region": row.region,
        "pricePerKwh": str(row.price_per_kwh),
        "validFrom": row.valid_from.astimezone(UTC).isoformat(),
        "validTo": row.valid_to.astimezone(UTC).isoformat(),
        "reason": row.reason,
    }
