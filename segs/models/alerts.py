"""Alerts, their transition history, and how notifications about them reach people."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Identity
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import Uuid
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from segs.domain.identifiers import ID_MAX_LENGTH
from segs.models.base import Base


class Alert(Base):
    """One alert. At most one open (active or acknowledged) per (type, region, meter_id): a
    partial unique index says so (migration 0004); a repeat counts occurrences instead.

    A regional incident (segs.domain.incidents) is an alert of its own type without a meter;
    the meter alerts it groups name it in incident_id, and it counts their meters in
    meter_count. A meter alert waiting for an incident to form has notify_after: its
    notifications are held until then (migration 0011).
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(ForeignKey("regions.name"))
    meter_id: Mapped[str | None] = mapped_column(String(ID_MAX_LENGTH))
    message: Mapped[str] = mapped_column(Text)
    occurrence_count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    auto_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), index=True
    )
    meter_count: Mapped[int | None] = mapped_column(Integer)
    notify_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertTransition(Base):
    """Every change of an alert's state or severity, automatic or by a person (actor_id).

    Also the notifications' outbox: dispatched_at stays NULL until the transition's fan-out is
    queued, and beat dispatches again the rows left so (migration 0006). A transition of an
    alert grouped under an incident is taken out of the outbox without a fan-out of its own:
    grouped_into names the incident whose notification stands for it (migration 0011).
    """

    __tablename__ = "alert_transitions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grouped_into: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))


class NotificationPreference(Base):
    """An account's choice of channels, kinds and minimum severity (defaults when absent)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    kinds: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    min_severity: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Webhook(Base):
    """An account's HTTP endpoint; payloads are signed with its secret."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NotificationDelivery(Base):
    """One attempt to hand one notification to one channel, with its outcome."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # "transition:<id>" or "tariff:<region>:<effective_from>"
    subject: Mapped[str] = mapped_column(String(160), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # sent | failed
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeadLetter(Base):
    """A notification given up on after its last attempt, kept for a later replay."""

    __tablename__ = "notification_dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    target: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(160))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DigestItem(Base):
    """A notification held for its recipient's digest (segs.domain.digests): over the rate
    limit, it waits here, durably, until the digest that carries it goes out.

    A recipient is (channel, target), as a delivery names it: an email address or a webhook id.
    One row per delivery subject and recipient, so a delivery run twice is held once.
    digest_subject stays NULL while held, then names the digest that carried it (or was given
    up on, as a dead letter).
    """

    __tablename__ = "notification_digest_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(160))
    title: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    digest_subject: Mapped[str | None] = mapped_column(String(160))
