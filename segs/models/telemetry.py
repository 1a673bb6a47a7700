"""Raw readings and the window aggregates. Tables are created by migrations/ (partitioned DDL)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import Integer
from sqlalchemy import Numeric
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import Uuid
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from segs.domain.identifiers import ID_MAX_LENGTH
from segs.domain.readings import REGION_MAX_LENGTH
from segs.models.base import Base

Quantity = Numeric(16, 6)
Sum = Numeric(24, 6)
RegionSum = Numeric(1000, 6)  # PostgreSQL's widest declared numeric


class RawReading(Base):
    """One accepted reading; its (meter_id, ts) key is the deduplication authority."""

    __tablename__ = "raw_readings"
    __table_args__ = {"postgresql_partition_by": "RANGE (ts)"}

    meter_id: Mapped[str] = mapped_column(String(ID_MAX_LENGTH), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    reading_id: Mapped[str] = mapped_column(Text)
    region: Mapped[str] = mapped_column(String(REGION_MAX_LENGTH))
    power_kw: Mapped[Decimal] = mapped_column(Quantity)
    energy_kwh: Mapped[Decimal | None] = mapped_column(Quantity)
    voltage: Mapped[Decimal | None] = mapped_column(Quantity)
    current: Mapped[Decimal | None] = mapped_column(Quantity)
    frequency: Mapped[Decimal | None] = mapped_column(Quantity)
    power_factor: Mapped[Decimal | None] = mapped_column(Numeric(8, 6))
    temperature: Mapped[Decimal | None] = mapped_column(Quantity)
    # The task that inserted the row: a redelivered task folds exactly the rows it owns.
    batch_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _MeterWindow:
    """Columns shared by the per-meter window tables."""

    meter_id: Mapped[str] = mapped_column(String(ID_MAX_LENGTH), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    region: Mapped[str] = mapped_column(String(REGION_MAX_LENGTH))
    reading_count: Mapped[int] = mapped_column(Integer)
    power_sum_kw: Mapped[Decimal] = mapped_column(Sum)
    avg_power_kw: Mapped[Decimal] = mapped_column(Quantity)
    min_power_kw: Mapped[Decimal] = mapped_column(Quantity)
    max_power_kw: Mapped[Decimal] = mapped_column(Quantity)
    energy_kwh_sum: Mapped[Decimal] = mapped_column(Sum)
    voltage_sum: Mapped[Decimal] = mapped_column(Sum)
    voltage_count: Mapped[int] = mapped_column(Integer)
    voltage_avg: Mapped[Decimal | None] = mapped_column(Quantity)
    last_reading_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    flush_count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Aggregate1m(_MeterWindow, Base):
    __tablename__ = "aggregates_1m"
    __table_args__ = {"postgresql_partition_by": "RANGE (window_start)"}


class Aggregate15m(_MeterWindow, Base):
    __tablename__ = "aggregates_15m"
    __table_args__ = {"postgresql_partition_by": "RANGE (window_start)"}


class _RegionWindow:
    """Columns shared by the per-region window tables, derived from the per-meter rows.

    The sums over a region's meters are as wide as PostgreSQL's numerics go: however many meters
    a region has, within the reading bounds, no sum can overflow and stop the flush (0007).
    """

    region: Mapped[str] = mapped_column(String(REGION_MAX_LENGTH), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    meter_count: Mapped[int] = mapped_column(Integer)
    reading_count: Mapped[int] = mapped_column(BigInteger)
    total_power_kw: Mapped[Decimal] = mapped_column(RegionSum)
    capacity_kw: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    load_percentage: Mapped[Decimal] = mapped_column(Numeric(1000, 4))
    energy_kwh_sum: Mapped[Decimal] = mapped_column(RegionSum)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RegionalAggregate1m(_RegionWindow, Base):
    __tablename__ = "regional_aggregates_1m"


class RegionalAggregate15m(_RegionWindow, Base):
    __tablename__ = "regional_aggregates_15m"


class WindowFlush(Base):
    """A window hash already merged into PostgreSQL: makes a retried flush apply once."""

    __tablename__ = "window_flushes"

    flush_key: Mapped[str] = mapped_column(Text, primary_key=True)
    flushed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
