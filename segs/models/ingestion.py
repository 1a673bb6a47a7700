"""Ingestion keys, and what the pipeline set aside: dead-lettered batches, quarantined windows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Identity
from sqlalchemy import Integer
from sqlalchemy import LargeBinary
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import Uuid
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from segs.domain.readings import REGION_MAX_LENGTH
from segs.models.base import Base


class IngestionKey(Base):
    """A key a meter (device key: meter_id) or a head-end (regions; NULL for every region)
    presents; only its SHA-256 digest is kept (segs.domain.ingestion_keys)."""

    __tablename__ = "ingestion_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    meter_id: Mapped[str | None] = mapped_column(ForeignKey("meters.meter_id"))
    regions: Mapped[list[str] | None] = mapped_column(ARRAY(String(REGION_MAX_LENGTH)))
    rate_limit: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Set when the key is rotated: it keeps working beside its successor until then.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The key this one replaced by rotation.
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ingestion_keys.id"))


class DeadLetterBatch(Base):
    """A reading batch that kept failing for a reason other than an outage, with its rows, so
    an operator can replay it after a fix (under the same batch id) or discard it."""

    __tablename__ = "dead_letter_batches"

    batch_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer)
    received_at_us: Mapped[int] = mapped_column(BigInteger)
    # The rows as JSON bytes: the batch may hold what jsonb refuses (a NUL in a string).
    rows_json: Mapped[bytes] = mapped_column(LargeBinary)
    reading_count: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    # dead, replayed or discarded
    status: Mapped[str] = mapped_column(String(16))
    # How often the batch was set aside; a replay that fails again sets it aside once more.
    times_dead: Mapped[int] = mapped_column(Integer, default=1)
    dead_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class QuarantinedWindow(Base):
    """A region window the flush could not write, with its meters' statistics, so the other
    windows go on and an operator can flush it again after a fix."""

    __tablename__ = "quarantined_windows"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The window's hash name while it was being flushed: the flush log's key for it.
    flush_key: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[str] = mapped_column(String(8))
    region: Mapped[str] = mapped_column(String(REGION_MAX_LENGTH))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # {meter_id: [count, power_sum, power_min, power_max, energy_sum, voltage_sum,
    #  voltage_count, last_ts_us]} in micro-units (segs.domain.windows.WindowStats)
    meters: Mapped[dict[str, list[int]]] = mapped_column(JSONB)
    meter_count: Mapped[int] = mapped_column(Integer)
    reading_count: Mapped[int] = mapped_column(BigInteger)
    error_type: Mapped[str] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    # quarantined, or released (handed back to the flush)
    status: Mapped[str] = mapped_column(String(16))
    times_quarantined: Mapped[int] = mapped_column(Integer, default=1)
    quarantined_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
