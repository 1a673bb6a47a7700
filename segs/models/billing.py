"""Tariffs (overrides and the price history) and billing (invoices, their lines, payments)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Identity
from sqlalchemy import Integer
from sqlalchemy import Numeric
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import Uuid
from sqlalchemy import func
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from segs.domain.billing import PENDING
from segs.domain.billing import SUCCEEDED
from segs.domain.identifiers import ID_MAX_LENGTH
from segs.models.base import Base

Price = Numeric(12, 6)


class TariffOverride(Base):
    """An admin's fixed price for a region over a validity window; removal only marks it."""

    __tablename__ = "tariff_overrides"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    region: Mapped[str] = mapped_column(ForeignKey("regions.name"))
    price_per_kwh: Mapped[Decimal] = mapped_column(Price)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class Tariff(Base):
    """One interval of a region's price history; the open one (no effective_to) is current."""

    __tablename__ = "tariffs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    region: Mapped[str] = mapped_column(ForeignKey("regions.name"))
    price_per_kwh: Mapped[Decimal] = mapped_column(Price)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    triggered_by: Mapped[str] = mapped_column(String(32))
    load_percentage: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    load_multiplier: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    tou_period: Mapped[str | None] = mapped_column(String(16))
    override_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_overrides.id"))


class Invoice(Base):
    """A customer meter's bill for one calendar month of its region's local time."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    invoice_number: Mapped[str] = mapped_column(String(32))
    meter_id: Mapped[str] = mapped_column(String(ID_MAX_LENGTH))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    region: Mapped[str] = mapped_column(ForeignKey("regions.name"))
    period: Mapped[str] = mapped_column(String(7))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    energy_kwh: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    energy_minor: Mapped[int] = mapped_column(BigInteger)
    demand_kw: Mapped[Decimal | None] = mapped_column(Numeric(16, 6))
    demand_minor: Mapped[int] = mapped_column(BigInteger)
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)  # INVOICE_STATUSES
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disputed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InvoiceLineItem(Base):
    __tablename__ = "invoice_line_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    tariff_id: Mapped[int | None] = mapped_column(BigInteger)
    tou_period: Mapped[str | None] = mapped_column(String(16))
    quantity: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    unit_price: Mapped[Decimal] = mapped_column(Price)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class InvoicePayment(Base):
    """A payment: recorded by staff (settled at once), or started by the customer with a
    provider (pending until the provider's signed callback says succeeded or failed)."""

    __tablename__ = "invoice_payments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(128))
    paid_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16), default=SUCCEEDED)  # PAYMENT_STATUSES
    provider: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
