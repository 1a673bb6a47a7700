"""Changes to a region that operators own: its capacity (the API's PATCH and the CLI).

Regions themselves are not created here: a region comes with its time zone, its pricing rules
and the ingestion keys scoped to it, and is added by a migration (0001 seeds the ten).

A new capacity applies to every regional window the flush writes from then on (a late reading
or a recompute rewrites its window with the capacity in force at that time); windows already
written keep the capacity they were computed with, in their own ``capacity_kw`` column.

A refused capacity is named ``capacity_kw``; each caller answers with its own name for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.capacity import capacity_problem
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Region
from segs.services.accounts import Actor
from segs.services.accounts import record_audit


@dataclass(frozen=True)
class CapacityChange:
    region: Region
    previous_kw: Decimal

    @property
    def changed(self) -> bool:
        return self.region.capacity_kw != self.previous_kw


def set_capacity(session: Session, actor: Actor, name: str, capacity_kw: Decimal) -> CapacityChange:
    """Set the region's capacity in kW; an actual change is audited in the same transaction.

    :raises InvalidInputError: the value is out of bounds (segs.domain.capacity).
    :raises NotFoundError: there is no region of that name.
    """
    problem = capacity_problem(capacity_kw)
    if problem is not None:
        raise InvalidInputError(f"not a usable capacity: {problem}", {"capacity_kw": [problem]})
    # FOR NO KEY UPDATE, as the tariff engine locks a region: the flush's foreign keys only
    # take KEY SHARE locks, so readings keep flowing while the row changes.
    region = session.scalar(
        select(Region).where(Region.name == name).with_for_update(key_share=True)
    )
    if region is None:
        raise NotFoundError(f"region {name} not found")
    previous = region.capacity_kw
    if previous != capacity_kw:
        region.capacity_kw = capacity_kw
        session.flush()
        session.refresh(region)
        record_audit(
            session,
            actor,
            "region.capacity",
            "region",
            region.name,
            {"from": str(previous), "to": str(region.capacity_kw)},
        )
    return CapacityChange(region, previous)
