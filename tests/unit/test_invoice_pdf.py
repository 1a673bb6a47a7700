"""The invoice PDF: money formatting, Latin-1 text, a whole document from unsaved rows."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

from segs.models import Invoice
from segs.models import InvoiceLineItem
from segs.models import InvoicePayment
from segs.services.pricing.invoice_pdf import latin1
from segs.services.pricing.invoice_pdf import money
from segs.services.pricing.invoice_pdf import render_invoice


def test_money_and_text():
    assert money(123456789, "INR") == "INR 1,234,567.89"
    assert money(5, "INR") == "INR 0.05"
    assert latin1("MTR-Ω-é") == "MTR-?-é"


def test_a_meter_id_outside_latin1_still_renders():
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    invoice = Invoice(
        id=1,
        invoice_number="INV-202610-00000001",
        meter_id="MTR-Ω",
        region="Pune-West",
        period="2026-10",
        period_start=datetime(2026, 9, 30, 18, 30, tzinfo=UTC),
        period_end=datetime(2026, 10, 31, 18, 30, tzinfo=UTC),
        timezone="Asia/Kolkata",
        currency="INR",
        energy_kwh=Decimal("10"),
        energy_minor=6000,
        demand_kw=None,
        demand_minor=0,
        tax_rate=Decimal("0.18"),
        tax_minor=1080,
        total_minor=7080,
        paid_minor=7080,
        status="paid",
        issued_at=moment,
        due_at=moment,
    )
    lines = [
        InvoiceLineItem(
            position=1,
            kind="energy",
            description="shoulder energy at tariff #1",
            quantity=Decimal("10"),
            unit_price=Decimal("6"),
            amount_minor=6000,
        )
    ]
    paid = [InvoicePayment(amount_minor=7080, method="upi", paid_at=moment)]
    document = render_invoice(invoice, lines, paid, "Europe/London")
    assert document.startswith(b"%PDF-")
