"""Regions of the grid and the meter registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Identity
from sqlalchemy import Numeric
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from segs.domain.identifiers import ID_MAX_LENGTH
from segs.domain.readings import REGION_MAX_LENGTH
from segs.models.base import Base


class Region(Base):
    """A grid region: its local time zone and the capacity its load is measured against."""

    __tablename__ = "regions"

    name: Mapped[str] = mapped_column(String(REGION_MAX_LENGTH), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    capacity_kw: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    # Pricing (segs.domain.tariffs): price = base x load band x time-of-use multiplier.
    base_price_per_kwh: Mapped[Decimal] = mapped_column(Numeric(12, 6))
    load_bands: Mapped[list[dict[str, str]]] = mapped_column(JSONB)
    tou_schedule: Mapped[dict[str, str]] = mapped_column(JSONB)
    tou_multipliers: Mapped[dict[str, str]] = mapped_column(JSONB)
    demand_charge_per_kw: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Meter(Base):
    """A meter: registered on first sight or by an admin; last_seen follows its newest reading.

    A meter belongs to at most one account (owner_id), and only to one of its own region.
    ``region`` is where it belongs from its latest move (MeterMove) on; readings before a move
    belong to the region it left.
    """

    __tablename__ = "meters"

    meter_id: Mapped[str] = mapped_column(String(ID_MAX_LENGTH), primary_key=True)
    region: Mapped[str] = mapped_column(ForeignKey("regions.name"), index=True)
    # Empty until the first reading arrives, for a meter an admin registered ahead of it.
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MeterMove(Base):
    """A meter's move to another region, effective from a 15-minute boundary
    (segs.domain.registry)."""

    __tablename__ = "meter_moves"
    __table_args__ = (UniqueConstraint("meter_id", "effective_from"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.meter_id"))
    from_region: Mapped[str] = mapped_column(ForeignKey("regions.name"))
    to_region: Mapped[str] = mapped_column(ForeignKey("regions.name"))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    moved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
