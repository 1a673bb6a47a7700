"""SQLAlchemy models. Import from here so every table is registered on Base.metadata."""

from segs.models.accounts import AuditEntry
from segs.models.accounts import LoginFailure
from segs.models.accounts import RefreshToken
from segs.models.accounts import User
from segs.models.accounts import VerificationCode
from segs.models.alerts import Alert
from segs.models.alerts import AlertTransition
from segs.models.alerts import DeadLetter
from segs.models.alerts import DigestItem
from segs.models.alerts import NotificationDelivery
from segs.models.alerts import NotificationPreference
from segs.models.alerts import Webhook
from segs.models.base import Base
from segs.models.billing import Invoice
from segs.models.billing import InvoiceLineItem
from segs.models.billing import InvoicePayment
from segs.models.billing import Tariff
from segs.models.billing import TariffOverride
from segs.models.grid import Meter
from segs.models.grid import MeterMove
from segs.models.grid import Region
from segs.models.ingestion import DeadLetterBatch
from segs.models.ingestion import IngestionKey
from segs.models.ingestion import QuarantinedWindow
from segs.models.ownership import MeterAssignment
from segs.models.telemetry import Aggregate1m
from segs.models.telemetry import Aggregate15m
from segs.models.telemetry import RawReading
from segs.models.telemetry import RegionalAggregate1m
from segs.models.telemetry import RegionalAggregate15m
from segs.models.telemetry import WindowFlush

__all__ = [
    "LoginFailure",
    "Alert",
    "AlertTransition",
    "DeadLetter",
    "DigestItem",
    "NotificationDelivery",
    "NotificationPreference",
    "Webhook",
    "Aggregate15m",
    "Aggregate1m",
    "AuditEntry",
    "Base",
    "Invoice",
    "InvoiceLineItem",
    "InvoicePayment",
    "Meter",
    "MeterMove",
    "DeadLetterBatch",
    "IngestionKey",
    "QuarantinedWindow",
    "MeterAssignment",
    "RawReading",
    "RefreshToken",
    "Region",
    "RegionalAggregate15m",
    "RegionalAggregate1m",
    "Tariff",
    "TariffOverride",
    "User",
    "VerificationCode",
    "WindowFlush",
]
