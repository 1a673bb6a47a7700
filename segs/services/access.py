"""Scope checks shared by every resource: which meters an account may see."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.access import STAFF
from segs.domain.access import can_see_meter
from segs.errors import NotFoundError
from segs.models import Meter


def visible_meter(session: Session, account_id: uuid.UUID, role: str, meter_id: str) -> Meter:
    """Return the meter if the account may see it.

    :raises NotFoundError: the meter does not exist or is not the account's to see (a USER
        cannot tell the two apart, so other customers' meter ids do not leak).
    """
    meter = session.get(Meter, meter_id)
    if meter is None or not can_see_meter(role, account_id, meter.owner_id):
        raise NotFoundError(f"meter {meter_id} not found")
    return meter


def owned_meter_ids(session: Session, account_id: uuid.UUID) -> list[str]:
    """The meters assigned to an account, in id order."""
    return list(
        session.scalars(
            select(Meter.meter_id).where(Meter.owner_id == account_id).order_by(Meter.meter_id)
        )
    )


def is_staff(role: str) -> bool:
    return role in STAFF
