"""An invoice as a one-page PDF (fpdf2's built-in Helvetica: Latin-1 text only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from fpdf import FPDF

from segs.domain.billing import MINOR_UNITS
from segs.models import Invoice
from segs.models import InvoiceLineItem
from segs.models import InvoicePayment


def money(minor: int, currency: str) -> str:
    return f"{currency} {minor // MINOR_UNITS:,}.{minor % MINOR_UNITS:02d}"


def latin1(text: str) -> str:
    """The built-in fonts cover Latin-1 only; anything else (a meter id from a device) becomes ?."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def render_invoice(
    invoice: Invoice,
    lines: Sequence[InvoiceLineItem],
    paid: Sequence[InvoicePayment],
    customer_timezone: str,
) -> bytes:
    """Dates in the customer's time zone; the period also in the region's, where it is cut."""
    zone = ZoneInfo(customer_timezone)
    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {invoice.invoice_number}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, latin1(f"SEGS invoice {invoice.invoice_number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    region_zone = ZoneInfo(invoice.timezone)
    for label, value in (
        ("Meter", invoice.meter_id),
        ("Region", f"{invoice.region} ({invoice.timezone})"),
        (
            "Period",
            f"{invoice.period}: {_local(invoice.period_start, region_zone)} to "
            f"{_local(invoice.period_end, region_zone)}",
        ),
        ("Issued", _local(invoice.issued_at, zone)),
        ("Due", _local(invoice.due_at, zone)),
        ("Status", invoice.status),
    ):
        pdf.cell(30, 6, label)
        pdf.cell(0, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    for width, title in ((90, "Item"), (30, "Quantity"), (30, "Unit price"), (40, "Amount")):
        pdf.cell(width, 7, title, border="B")
    pdf.ln()
    pdf.set_font("Helvetica", size=9)
    for line in lines:
        unit = "kW" if line.kind == "demand" else "kWh"
        pdf.cell(90, 6, latin1(line.description))
        pdf.cell(30, 6, f"{line.quantity} {unit}")
        pdf.cell(30, 6, f"{line.unit_price}")
        pdf.cell(40, 6, money(line.amount_minor, invoice.currency), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", size=10)
    subtotal = invoice.energy_minor + invoice.demand_minor
    for label, minor in (
        ("Subtotal", subtotal),
        (f"Tax ({invoice.tax_rate * 100:.2f} %)", invoice.tax_minor),
        ("Total", invoice.total_minor),
        ("Paid", invoice.paid_minor),
        ("Balance", invoice.total_minor - invoice.paid_minor),
    ):
        pdf.cell(150, 6, label, align="R")
        pdf.cell(40, 6, money(minor, invoice.currency), new_x="LMARGIN", new_y="NEXT")
    for payment in paid:
        if payment.paid_at is None:  # a pending or failed payment paid nothing
            continue
        pdf.cell(
            0,
            6,
            latin1(
                f"Payment {money(payment.amount_minor, invoice.currency)} by {payment.method} "
                f"on {_local(payment.paid_at, zone)}"
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())
