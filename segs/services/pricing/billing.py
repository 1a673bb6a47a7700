"""Invoices after the run: reads in scope, payments, disputes, statuses, estimates, exports.

Every status change goes through the lifecycle of ``segs.domain.billing.INVOICE_TRANSITIONS``;
:func:`require_transition` turns a move it does not allow into a 409.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from segs.domain.billing import CANCELLED
from segs.domain.billing import DISPUTED
from segs.domain.billing import INTERVAL
from segs.domain.billing import OVERDUE
from segs.domain.billing import RESOLVED
from segs.domain.billing import CycleProjection
from segs.domain.billing import InvoiceTransitionError
from segs.domain.billing import check_transition
from segs.domain.billing import compute_invoice
from segs.domain.billing import ended_intervals
from segs.domain.billing import month_bounds
from segs.domain.billing import period_of
from segs.domain.billing import project_cycle
from segs.domain.billing import statuses_that_may_become
from segs.domain.text import spreadsheet_safe
from segs.errors import ConflictError
from segs.errors import NotFoundError
from segs.models import Invoice
from segs.models import InvoiceLineItem
from segs.models import InvoicePayment
from segs.models.base import BIGINT_MAX
from segs.services.accounts import Actor
from segs.services.accounts import is_staff
from segs.services.accounts import record_audit
from segs.services.pricing.billing_run import amounts_for
from segs.services.pricing.billing_run import meter_charges
from segs.services.pricing.billing_run import plan_region
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page


@dataclass(frozen=True)
class InvoiceFilters:
    status: str | None = None
    period: str | None = None
    meter_id: str | None = None
    region: str | None = None


def list_invoices(
    session: Session,
    viewer_id: uuid.UUID,
    viewer_role: str,
    filters: InvoiceFilters,
    *,
    page: int,
    page_size: int,
) -> Page[Invoice]:
    """Invoices in the viewer's scope (a USER: their own), newest period first."""
    statement = select(Invoice)
    if not is_staff(viewer_role):
        statement = statement.where(Invoice.user_id == viewer_id)
    for column, value in (
        (Invoice.status, filters.status),
        (Invoice.period, filters.period),
        (Invoice.meter_id, filters.meter_id),
        (Invoice.region, filters.region),
    ):
        if value is not None:
            statement = statement.where(column == value)
    statement = statement.order_by(Invoice.period_start.desc(), Invoice.invoice_number)
    items, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page(items, total)


def get_invoice(
    session: Session, viewer_id: uuid.UUID, viewer_role: str, invoice_id: int, *, lock: bool = False
) -> Invoice:
    """An invoice the viewer may see; another customer's answers 404 like a missing one."""
    if not 0 < invoice_id <= BIGINT_MAX:
        raise NotFoundError(f"invoice {invoice_id} not found")
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if lock:
        statement = statement.with_for_update()
    invoice = session.scalar(statement)
    if invoice is None or (not is_staff(viewer_role) and invoice.user_id != viewer_id):
        raise NotFoundError(f"invoice {invoice_id} not found")
    return invoice


def line_items(session: Session, invoice_id: int) -> list[InvoiceLineItem]:
    return list(
        session.scalars(
            select(InvoiceLineItem)
            .where(InvoiceLineItem.invoice_id == invoice_id)
            .order_by(InvoiceLineItem.position)
        )
    )


def payments(session: Session, invoice_id: int) -> list[InvoicePayment]:
    return list(
        session.scalars(
            select(InvoicePayment)
            .where(InvoicePayment.invoice_id == invoice_id)
            .order_by(InvoicePayment.created_at, InvoicePayment.id)
        )
    )


def require_transition(invoice: Invoice, target: str) -> None:
    """Refuse (409, naming the statuses that could) to move *invoice* to *target*."""
    try:
        check_transition(invoice.status, target)
    except InvoiceTransitionError as exc:
        raise ConflictError(str(exc), {"status": exc.status, "allowed": list(exc.allowed)}) from exc


def dispute(session: Session, actor: Actor, invoice_id: int, reason: str, now: datetime) -> Invoice:
    assert actor.account is not None
    invoice = get_invoice(session, actor.account.id, actor.account.role, invoice_id, lock=True)
    require_transition(invoice, DISPUTED)
    invoice.status = DISPUTED
    invoice.disputed_at = now
    invoice.dispute_reason = reason
    return invoice


def resolve(
    session: Session, actor: Actor, invoice_id: int, outcome: str, resolution: str, now: datetime
) -> Invoice:
    """An operator closes a dispute: ``uphold`` (the bill stands, payable) or ``void``."""
    assert actor.account is not None
    invoice = get_invoice(session, actor.account.id, actor.account.role, invoice_id, lock=True)
    # Only a disputed invoice has a dispute to close, whichever the outcome.
    require_transition(invoice, RESOLVED)
    invoice.resolved_at = now
    invoice.resolution = resolution
    if outcome == "void":
        invoice.status = CANCELLED
        invoice.cancelled_at = now
    else:
        invoice.status = RESOLVED
    record_audit(
        session,
        actor,
        "invoice.resolve",
        "invoice",
        invoice.id,
        {"outcome": outcome, "resolution": resolution},
    )
    return invoice


def cancel(session: Session, actor: Actor, invoice_id: int, reason: str, now: datetime) -> Invoice:
    assert actor.account is not None
    invoice = get_invoice(session, actor.account.id, actor.account.role, invoice_id, lock=True)
    require_transition(invoice, CANCELLED)
    invoice.status = CANCELLED
    invoice.cancelled_at = now
    invoice.resolution = reason
    record_audit(session, actor, "invoice.cancel", "invoice", invoice.id, {"reason": reason})
    return invoice


def mark_overdue(session: Session, now: datetime) -> int:
    """Pending invoices past their due date become overdue; returns how many."""
    result = session.execute(
        update(Invoice)
        .where(Invoice.status.in_(statuses_that_may_become(OVERDUE)), Invoice.due_at < now)
        .values(status=OVERDUE, updated_at=now)
        .returning(Invoice.id)
    )
    return len(result.fetchall())


@dataclass(frozen=True)
class PeriodAnalytics:
    period: str | None
    invoices: int
    by_status: dict[str, int]
    energy_kwh: Decimal
    billed_minor: int
    paid_minor: int
    outstanding_minor: int
    overdue_minor: int


def analytics(session: Session, period: str | None) -> PeriodAnalytics:
    """Totals over the invoices of *period* (every period if None); cancelled ones excluded."""
    statement = select(
        Invoice.status,
        func.count(),
        func.coalesce(func.sum(Invoice.energy_kwh), 0),
        func.coalesce(func.sum(Invoice.total_minor), 0),
        func.coalesce(func.sum(Invoice.paid_minor), 0),
    ).group_by(Invoice.status)
    if period is not None:
        statement = statement.where(Invoice.period == period)
    by_status: dict[str, int] = {}
    energy = Decimal(0)
    billed = paid = overdue = 0
    for status, count, kwh, total, paid_amount in session.execute(statement):
        by_status[status] = int(count)
        if status == CANCELLED:
            continue
        energy += kwh
        billed += int(total)
        paid += int(paid_amount)
        if status == OVERDUE:
            overdue += int(total) - int(paid_amount)
    return PeriodAnalytics(
        period, sum(by_status.values()), by_status, energy, billed, paid, billed - paid, overdue
    )


CSV_COLUMNS = (
    "invoice_number",
    "meter_id",
    "user_id",
    "region",
    "period",
    "period_start",
    "period_end",
    "currency",
    "energy_kwh",
    "energy_minor",
    "demand_kw",
    "demand_minor",
    "tax_minor",
    "total_minor",
    "paid_minor",
    "status",
    "due_at",
)


def export_csv(session: Session, period: str | None, status: str | None) -> str:
    statement = select(Invoice).order_by(Invoice.period_start, Invoice.invoice_number)
    if period is not None:
        statement = statement.where(Invoice.period == period)
    if status is not None:
        statement = statement.where(Invoice.status == status)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in session.scalars(statement):
        row = []
        for column in CSV_COLUMNS:
            value = getattr(invoice, column)
            if value is None:
                value = ""
            elif isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, str | uuid.UUID):
                # Meter ids come from the meters themselves: text is never a formula.
                value = spreadsheet_safe(str(value))
            row.append(value)
        writer.writerow(row)
    return out.getvalue()


@dataclass(frozen=True)
class CycleEstimate:
    meter_id: str
    region: str
    period: str
    period_start: datetime
    period_end: datetime
    energy_kwh: Decimal
    so_far_minor: int
    projection: CycleProjection

    @property
    def projected_minor(self) -> int | None:
        return self.projection.projected_minor


def current_cycle(
    conn: psycopg.Connection, owner_id: uuid.UUID, now: datetime, tax_rate: Decimal
) -> list[CycleEstimate]:
    """Each of the owner's meters: this local month's bill so far and, from a day of data on,
    its projection to the month's end (segs.domain.billing.project_cycle).

    "So far" is the month's ended 15-minute intervals, as an invoice would bill them.
    """
    estimates = []
    with conn.transaction(), conn.cursor() as cursor:
        rows = cursor.execute(
            """
        SELECT m.meter_id, r.name, r.timezone, r.base_price_per_kwh, r.tou_schedule,
               r.tou_multipliers, r.demand_charge_per_kw
        FROM meters m JOIN regions r ON r.name = m.region
        WHERE m.owner_id = %s ORDER BY m.meter_id
        """,
            (owner_id,),
        ).fetchall()
        for meter_id, name, timezone, base, schedule, multipliers, demand_rate in rows:
            zone = ZoneInfo(timezone)
            period = period_of(now, zone)
            start, end = month_bounds(period, zone)
            through = start + ended_intervals(start, now) * INTERVAL
            region = plan_region(
                conn, name, zone, base, schedule, multipliers, demand_rate, start, end
            )
            charges = meter_charges(
                cursor, region, start, through, meter_ids=[meter_id], owner_id=owner_id
            )
            mine = charges.get((meter_id, owner_id))
            if mine is None:
                amounts, covered = compute_invoice([], None, None, tax_rate), 0
            else:
                amounts, covered = amounts_for(mine, region, tax_rate), mine.intervals
            estimates.append(
                CycleEstimate(
                    meter_id,
                    name,
                    period,
                    start,
                    end,
                    amounts.energy_kwh,
                    amounts.total_minor,
                    project_cycle(amounts, covered, start, end, now),
                )
            )
    return estimates
