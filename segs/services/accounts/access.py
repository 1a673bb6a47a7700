"""Scope checks shared by every resource: which meters an account may see."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.access import STAFF
from segs.domain.access import can_see_meter
from segs.errors import NotFoundError
from segs.models import Meter
from segs.models import MeterAssignment

# A tstzmultirange that holds every instant: staff read a meter's whole history.
ALL_TIME = "{(,)}"


def visible_meter(session: Session, account_id: uuid.UUID, role: str, meter_id: str) -> Meter:
    """Return the meter if the account may see it.

    :raises NotFoundError: the meter does not exist or is not the account's to see (a USER
        cannot tell the two apart, so other customers' meter ids do not leak).
    """
    meter = session.get(Meter, meter_id)
    if meter is None or not can_see_meter(role, account_id, meter.owner_id):
        raise NotFoundError(f"meter {meter_id} not found")
    return meter


def is_staff(role: str) -> bool:
    return role in STAFF


def readable_meter(
    session: Session, account_id: uuid.UUID, role: str, meter_id: str
) -> tuple[Meter, str]:
    """The meter, and the time the account may read its data for, as a tstzmultirange literal.

    Staff read all of it. A customer reads a meter they own or owned, and only the intervals
    they owned it: a new owner does not see the previous owner's consumption, nor the previous
    owner the new one's.

    :raises NotFoundError: no such meter, or never the account's (as visible_meter).
    """
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise NotFoundError(f"meter {meter_id} not found")
    if role in STAFF:
        return meter, ALL_TIME
    intervals = session.execute(
        select(MeterAssignment.assigned_from, MeterAssignment.assigned_to)
        .where(MeterAssignment.meter_id == meter_id, MeterAssignment.user_id == account_id)
        .order_by(MeterAssignment.assigned_from)
    ).all()
    if not intervals:
        raise NotFoundError(f"meter {meter_id} not found")
    ranges = ",".join(
        f"[{start.isoformat()},{end.isoformat() if end is not None else ''})"
        for start, end in intervals
    )
    return meter, "{" + ranges + "}"
