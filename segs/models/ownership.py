"""Who owned each meter when (migration 0008); meters.owner_id is the open interval's owner."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Identity
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from segs.domain.identifiers import ID_MAX_LENGTH
from segs.models.base import Base


class MeterAssignment(Base):
    """One owner of one meter over [assigned_from, assigned_to); open while assigned_to is
    NULL. Written by a trigger on meters.owner_id, never by the application directly."""

    __tablename__ = "meter_assignments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    meter_id: Mapped[str] = mapped_column(
        String(ID_MAX_LENGTH), ForeignKey("meters.meter_id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assigned_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assigned_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
