"""The meter registry: listing in scope, registering, retiring, assigning to accounts.

Meters are also registered by the ingestion workers on their first reading (first_seen and
last_seen set, no owner); an admin may register one ahead of its first reading.

Rules kept here:
- A USER lists and reads only the meters assigned to them; staff see every meter.
- A meter is assigned only to a USER account of the meter's own region (422 otherwise); staff
  see every meter anyway, so they own none.
- A meter assigned to someone else is not taken from them unless the admin says ``reassign``.
- A retired meter keeps its owner (who still sees its history) but takes no new owner.
- Locks are taken account first, then meter, everywhere, so concurrent changes cannot deadlock.
- A meter moves to another region from a 15-minute boundary after every reading already
  accepted (segs.domain.registry); an assigned or retired meter does not move.
- Retiring and moving are announced to the API's caches once committed, so ingestion holds
  readings to them from the next request on (segs.services.spine.registry_cache).

An error names a value by what it means (``meter_id``, ``user_id``, ``owner_id``,
``effective_from``); the web layer answers with the API's names for them (segs.web.meters).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from segs.domain.access import USER
from segs.domain.access import can_own_meter
from segs.domain.identifiers import ID_RULE
from segs.domain.identifiers import is_valid_id
from segs.domain.readings import from_epoch_us
from segs.domain.readings import to_epoch_us
from segs.domain.registry import earliest_move_us
from segs.domain.registry import move_time_problem
from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Meter
from segs.models import MeterMove
from segs.models import Region
from segs.models import User
from segs.services.accounts import Actor
from segs.services.accounts import is_staff
from segs.services.accounts import record_audit
from segs.services.accounts import visible_meter
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page
from segs.services.spine import announce_after_commit


@dataclass(frozen=True)
class MeterView:
    meter_id: str
    region: str
    owner_id: uuid.UUID | None
    assigned_at: datetime | None
    retired_at: datetime | None
    first_seen: datetime | None
    last_seen: datetime | None

    @property
    def status(self) -> str:
        return "retired" if self.retired_at is not None else "active"


@dataclass(frozen=True)
class MoveView:
    meter_id: str
    from_region: str
    to_region: str
    effective_from: datetime
    moved_at: datetime
    moved_by: uuid.UUID | None


@dataclass(frozen=True)
class MeterFilters:
    region: str | None = None
    owner_id: uuid.UUID | None = None
    # "active" or "retired"
    status: str | None = None
    assigned: bool | None = None


def list_meters(
    session: Session,
    viewer_id: uuid.UUID,
    viewer_role: str,
    filters: MeterFilters,
    *,
    page: int,
    page_size: int,
) -> Page[MeterView]:
    """Meters the viewer may see that match every given filter, by meter id."""
    statement = select(Meter)
    if not is_staff(viewer_role):
        statement = statement.where(Meter.owner_id == viewer_id)
    if filters.region is not None:
        statement = statement.where(Meter.region == filters.region)
    if filters.owner_id is not None:
        statement = statement.where(Meter.owner_id == filters.owner_id)
    if filters.status == "active":
        statement = statement.where(Meter.retired_at.is_(None))
    elif filters.status == "retired":
        statement = statement.where(Meter.retired_at.is_not(None))
    if filters.assigned is True:
        statement = statement.where(Meter.owner_id.is_not(None))
    elif filters.assigned is False:
        statement = statement.where(Meter.owner_id.is_(None))
    meters, total = fetch_page(
        session, statement.order_by(Meter.meter_id), page=page, page_size=page_size
    )
    return Page([_view(meter) for meter in meters], total)


def get_meter(session: Session, viewer_id: uuid.UUID, viewer_role: str, meter_id: str) -> MeterView:
    """One meter, if the viewer may see it (404 otherwise, whether or not it exists)."""
    _check_storable(meter_id)
    return _view(visible_meter(session, viewer_id, viewer_role, meter_id))


def create_meter(session: Session, actor: Actor, meter_id: str, region: str) -> MeterView:
    """Register a meter ahead of its first reading.

    :raises ConflictError: the meter is registered already (by an admin or by a reading).
    """
    if not is_valid_id(meter_id):
        raise InvalidInputError("not a meter id", {"meter_id": [ID_RULE]})
    if session.get(Region, region) is None:
        raise InvalidInputError(f"unknown region {region!r}", {"region": ["unknown region"]})
    created = session.scalar(
        insert(Meter)
        .values(meter_id=meter_id, region=region)
        .on_conflict_do_nothing(index_elements=[Meter.meter_id])
        .returning(Meter.meter_id)
    )
    if created is None:
        raise ConflictError(f"meter {meter_id} is registered already", code="METER_EXISTS")
    record_audit(session, actor, "meter.create", "meter", meter_id, {"region": region})
    return _view(_locked_meter(session, meter_id))


def retire_meter(session: Session, client: redis.Redis, actor: Actor, meter_id: str) -> MeterView:
    """Mark a meter retired; it keeps its owner and history but takes no new owner, and
    readings stamped from now on are refused."""
    meter = _locked_meter(session, meter_id)
    if meter.retired_at is not None:
        raise ConflictError(f"meter {meter_id} is retired already", code="METER_RETIRED")
    meter.retired_at = func.now()
    record_audit(
        session,
        actor,
        "meter.retire",
        "meter",
        meter_id,
        {"ownerId": _text(meter.owner_id)},
    )
    announce_after_commit(session, client)
    session.flush()
    session.refresh(meter)
    return _view(meter)


def move_meter(
    session: Session,
    client: redis.Redis,
    actor: Actor,
    meter_id: str,
    region: str,
    effective_from: datetime | None,
    *,
    now: datetime,
    max_future_skew_s: int,
) -> MoveView:
    """Move a meter to *region* from *effective_from* (default: the earliest it may).

    :raises NotFoundError: no such meter.
    :raises InvalidInputError: an unknown region, the meter's own region, or a time that is not
        a 15-minute boundary after every reading already accepted and after its latest move.
    :raises ConflictError: the meter is retired or assigned to an account.
    """
    meter = _locked_meter(session, meter_id)
    if meter.retired_at is not None:
        raise ConflictError(f"meter {meter_id} is retired", code="METER_RETIRED")
    if meter.owner_id is not None:
        raise ConflictError(
            f"meter {meter_id} is assigned to an account of {meter.region}; unassign it first",
            {"owner_id": str(meter.owner_id)},
            code="METER_ASSIGNED",
        )
    if session.get(Region, region) is None:
        raise InvalidInputError(f"unknown region {region!r}", {"region": ["unknown region"]})
    if region == meter.region:
        raise InvalidInputError(
            f"meter {meter_id} is in {region} already", {"region": ["the meter's own region"]}
        )
    now_us = to_epoch_us(now)
    effective_us = (
        earliest_move_us(now_us, max_future_skew_s)
        if effective_from is None
        else to_epoch_us(effective_from)
    )
    latest = session.scalar(
        select(func.max(MeterMove.effective_from)).where(MeterMove.meter_id == meter_id)
    )
    problem = move_time_problem(
        effective_us,
        now_us,
        max_future_skew_s,
        to_epoch_us(latest) if latest is not None else None,
    )
    if problem is not None:
        raise InvalidInputError(
            f"the move cannot start then: {problem}", {"effective_from": [problem]}
        )
    move = MeterMove(
        meter_id=meter_id,
        from_region=meter.region,
        to_region=region,
        effective_from=from_epoch_us(effective_us),
        moved_by=actor.id,
    )
    session.add(move)
    meter.region = region
    session.flush()
    record_audit(
        session,
        actor,
        "meter.move",
        "meter",
        meter_id,
        {
            "fromRegion": move.from_region,
            "toRegion": region,
            "effectiveFrom": move.effective_from.isoformat(),
        },
    )
    announce_after_commit(session, client)
    session.refresh(move)
    return _move_view(move)


def list_moves(
    session: Session, viewer_id: uuid.UUID, viewer_role: str, meter_id: str
) -> list[MoveView]:
    """A meter's moves, oldest first, if the viewer may see the meter."""
    _check_storable(meter_id)
    visible_meter(session, viewer_id, viewer_role, meter_id)
    moves = session.scalars(
        select(MeterMove).where(MeterMove.meter_id == meter_id).order_by(MeterMove.effective_from)
    )
    return [_move_view(move) for move in moves]


def _move_view(move: MeterMove) -> MoveView:
    return MoveView(
        meter_id=move.meter_id,
        from_region=move.from_region,
        to_region=move.to_region,
        effective_from=move.effective_from,
        moved_at=move.moved_at,
        moved_by=move.moved_by,
    )


def assign_meter(
    session: Session, actor: Actor, meter_id: str, user_id: uuid.UUID, *, reassign: bool = False
) -> MeterView:
    """Assign a meter to a USER account of its region.

    :raises NotFoundError: no such meter.
    :raises InvalidInputError: no such account, not a USER, or of another region.
    :raises ConflictError: the meter is retired, or assigned to someone else and not *reassign*.
    """
    _check_storable(meter_id)
    if session.get(Meter, meter_id) is None:
        raise NotFoundError(f"meter {meter_id} not found")
    user = session.get(User, user_id, with_for_update={"read": True})
    if user is None or user.deleted_at is not None:
        raise InvalidInputError(f"user {user_id} not found", {"user_id": ["no such account"]})
    meter = _locked_meter(session, meter_id)
    if meter.retired_at is not None:
        raise ConflictError(f"meter {meter_id} is retired", code="METER_RETIRED")
    if user.role != USER:
        raise InvalidInputError(
            f"a {user.role} account cannot own meters",
            {"user_id": ["only USER accounts own meters"]},
            code="NOT_A_CUSTOMER",
        )
    if not can_own_meter(user.region, meter.region):
        raise InvalidInputError(
            f"meter {meter_id} is in {meter.region} but the account's region is "
            f"{user.region or 'not set'}",
            {"user_id": [f"the account must be of the meter's region {meter.region}"]},
            code="REGION_MISMATCH",
        )
    if meter.owner_id == user.id:
        return _view(meter)
    if meter.owner_id is not None and not reassign:
        raise ConflictError(
            f"meter {meter_id} is assigned to another account; unassign it first or reassign",
            {"owner_id": str(meter.owner_id)},
            code="METER_ASSIGNED",
        )
    previous = meter.owner_id
    meter.owner_id = user.id
    meter.assigned_at = func.now()
    record_audit(
        session,
        actor,
        "meter.assign",
        "meter",
        meter_id,
        {"userId": str(user.id), "previousOwnerId": _text(previous)},
    )
    session.flush()
    session.refresh(meter)
    return _view(meter)


def unassign_meter(session: Session, actor: Actor, meter_id: str) -> None:
    """Take a meter from its owner.

    :raises ConflictError: the meter has no owner.
    """
    meter = _locked_meter(session, meter_id)
    if meter.owner_id is None:
        raise ConflictError(f"meter {meter_id} is not assigned", code="NOT_ASSIGNED")
    record_audit(
        session, actor, "meter.unassign", "meter", meter_id, {"userId": str(meter.owner_id)}
    )
    meter.owner_id = None
    meter.assigned_at = None
    session.flush()


def _check_storable(meter_id: str) -> None:
    """A path's meter id with a NUL character names no meter (PostgreSQL text cannot hold it)."""
    if "\x00" in meter_id:
        raise NotFoundError(f"meter {meter_id!r} not found")


def _locked_meter(session: Session, meter_id: str) -> Meter:
    _check_storable(meter_id)
    meter = session.get(Meter, meter_id, with_for_update=True, populate_existing=True)
    if meter is None:
        raise NotFoundError(f"meter {meter_id} not found")
    return meter


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _view(meter: Meter) -> MeterView:
    return MeterView(
        meter_id=meter.meter_id,
        region=meter.region,
        owner_id=meter.owner_id,
        assigned_at=meter.assigned_at,
        retired_at=meter.retired_at,
        first_seen=meter.first_seen,
        last_seen=meter.last_seen,
    )
