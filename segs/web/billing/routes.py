"""Billing views: a customer's invoices, PDF, current cycle, payments and disputes; operators'
overdue list, analytics, on-demand runs, CSV export and dispute resolution."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from flask import Response
from flask import current_app
from flask import request

from segs.config import Settings
from segs.db import raw_connection
from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.domain.access import USER
from segs.domain.billing import CURRENCY
from segs.domain.billing import OVERDUE
from segs.domain.webhooks import SIGNATURE_HEADER
from segs.domain.webhooks import TIMESTAMP_HEADER
from segs.errors import InvalidInputError
from segs.models import Invoice
from segs.models import InvoicePayment
from segs.models import User
from segs.services.accounts import audit
from segs.services.pricing import billing
from segs.services.pricing import payments
from segs.services.pricing.invoice_pdf import render_invoice
from segs.tasks.billing import generate_invoices
from segs.web.actor import current_actor
from segs.web.billing.schemas import BillingAnalyticsArgsSchema
from segs.web.billing.schemas import BillingAnalyticsSchema
from segs.web.billing.schemas import BillingRunAcceptedSchema
from segs.web.billing.schemas import BillingRunSchema
from segs.web.billing.schemas import CurrentCycleSchema
from segs.web.billing.schemas import DisputeResolutionSchema
from segs.web.billing.schemas import InvoiceDetailSchema
from segs.web.billing.schemas import InvoiceExportArgsSchema
from segs.web.billing.schemas import InvoicePageSchema
from segs.web.billing.schemas import InvoicePaymentSchema
from segs.web.billing.schemas import InvoiceQueryArgsSchema
from segs.web.billing.schemas import InvoiceReasonSchema
from segs.web.billing.schemas import InvoiceSchema
from segs.web.billing.schemas import OverdueInvoiceArgsSchema
from segs.web.billing.schemas import PaymentCallbackResultSchema
from segs.web.billing.schemas import PaymentCallbackSchema
from segs.web.billing.schemas import RecordPaymentSchema
from segs.web.billing.schemas import StartPaymentSchema
from segs.web.field_names import answering_with
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import roles_required

# The payment services name the amount by meaning; requests call it amountMinor.
API_FIELDS = {"amount_minor": "amountMinor"}

bp = Blueprint(
    "billing",
    __name__,
    url_prefix="/billing",
    description="Monthly invoices per customer meter (local-time months, each 15-minute "
    "interval at its own tariff, amounts in paise). A USER sees only their own invoices "
    "(others answer 404); operators and admins see all.",
)


def _settings() -> Settings:
    return current_app.config["SEGS_SETTINGS"]


def _detail(session: Any, invoice: Invoice) -> dict[str, Any]:
    return {
        **{column: getattr(invoice, column) for column in InvoiceSchema().fields},
        "lines": billing.line_items(session, invoice.id),
        "payments": billing.payments(session, invoice.id),
    }


@bp.get("/invoices")
@roles_required()
@bp.arguments(InvoiceQueryArgsSchema, location="query")
@bp.response(200, InvoicePageSchema)
def list_invoices(args: dict[str, Any]) -> dict[str, Any]:
    """List invoices in the caller's scope, newest period first."""
    account = current_account()
    filters = billing.InvoiceFilters(
        args.get("status"), args.get("period"), args.get("meter_id"), args.get("region")
    )
    with session_scope() as session:
        page = billing.list_invoices(
            session,
            account.id,
            account.role,
            filters,
            page=args["page"],
            page_size=args["page_size"],
        )
    return page_body(page.items, page.total, args)


@bp.get("/invoices/<int:invoice_id>")
@roles_required()
@bp.response(200, InvoiceDetailSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_invoice(invoice_id: int) -> dict[str, Any]:
    """Show an invoice with its line items (per tariff and time-of-use period) and payments."""
    account = current_account()
    with session_scope() as session:
        invoice = billing.get_invoice(session, account.id, account.role, invoice_id)
        return _detail(session, invoice)


@bp.get("/invoices/<int:invoice_id>/pdf")
@roles_required()
@bp.response(200, {"type": "string", "format": "binary"}, content_type="application/pdf")
@bp.alt_response(404, response="NOT_FOUND")
def invoice_pdf(invoice_id: int) -> Response:
    """Download an invoice as PDF; dates in the customer's time zone."""
    account = current_account()
    with session_scope() as session:
        invoice = billing.get_invoice(session, account.id, account.role, invoice_id)
        customer = session.get(User, invoice.user_id) if invoice.user_id else None
        body = render_invoice(
            invoice,
            billing.line_items(session, invoice.id),
            billing.payments(session, invoice.id),
            customer.timezone if customer is not None else invoice.timezone,
        )
    return Response(
        body,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{invoice.invoice_number}.pdf"'},
    )


@bp.post("/invoices/<int:invoice_id>/pay")
@roles_required(USER)
@bp.arguments(StartPaymentSchema)
@bp.response(202, InvoicePaymentSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def pay_invoice(body: dict[str, Any], invoice_id: int) -> InvoicePayment:
    """Start paying one of your invoices with the payment provider.

    Answers the pending payment (the one already pending, if any) with the reference the
    provider's checkout takes; the invoice is paid when the provider confirms it."""
    with session_scope() as session, answering_with(API_FIELDS):
        return payments.start_payment(
            session,
            _settings(),
            current_actor(),
            invoice_id,
            body["amount_minor"],
            body["method"],
            datetime.now(UTC),
        )


@bp.post("/invoices/<int:invoice_id>/payments")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(RecordPaymentSchema)
@bp.response(201, InvoiceDetailSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def record_payment(body: dict[str, Any], invoice_id: int) -> dict[str, Any]:
    """Record a payment received for the whole outstanding balance; the invoice is paid."""
    with session_scope() as session, answering_with(API_FIELDS):
        invoice = payments.record_payment(
            session,
            current_actor(),
            invoice_id,
            body["amount_minor"],
            body["method"],
            body.get("reference"),
            datetime.now(UTC),
        )
        return _detail(session, invoice)


@bp.post("/payment-callbacks/<provider>")
@bp.arguments(PaymentCallbackSchema)
@bp.response(200, PaymentCallbackResultSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.doc(security=[])
def payment_callback(body: dict[str, Any], provider: str) -> payments.CallbackResult:
    """The payment provider reports a payment's outcome (no token: the request is signed).

    Headers ``X-SEGS-Timestamp`` (unix seconds) and ``X-SEGS-Signature``
    (``sha256=`` HMAC-SHA256 of ``<timestamp>.<body>`` with SEGS_PAYMENT_CALLBACK_SECRET);
    a timestamp more than 5 minutes away is refused. Repeating a callback changes nothing."""
    with session_scope() as session, answering_with(API_FIELDS):
        return payments.provider_callback(
            session,
            _settings(),
            provider,
            request.get_data(cache=True),
            body,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            request.remote_addr,
            datetime.now(UTC),
        )


@bp.post("/invoices/<int:invoice_id>/dispute")
@roles_required(USER)
@bp.arguments(InvoiceReasonSchema)
@bp.response(200, InvoiceSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def dispute_invoice(body: dict[str, Any], invoice_id: int) -> Invoice:
    """Dispute one of your pending or overdue invoices."""
    with session_scope() as session:
        return billing.dispute(
            session, current_actor(), invoice_id, body["reason"], datetime.now(UTC)
        )


@bp.post("/invoices/<int:invoice_id>/resolve")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(DisputeResolutionSchema)
@bp.response(200, InvoiceSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def resolve_dispute(body: dict[str, Any], invoice_id: int) -> Invoice:
    """Close a dispute: uphold the bill (it becomes payable again) or void it."""
    with session_scope() as session:
        return billing.resolve(
            session,
            current_actor(),
            invoice_id,
            body["outcome"],
            body["resolution"],
            datetime.now(UTC),
        )


@bp.post("/invoices/<int:invoice_id>/cancel")
@roles_required(ADMIN)
@bp.arguments(InvoiceReasonSchema)
@bp.response(200, InvoiceSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def cancel_invoice(body: dict[str, Any], invoice_id: int) -> Invoice:
    """Cancel an unpaid invoice."""
    with session_scope() as session:
        return billing.cancel(
            session, current_actor(), invoice_id, body["reason"], datetime.now(UTC)
        )


@bp.get("/current-cycle")
@roles_required()
@bp.response(200, CurrentCycleSchema)
def current_cycle() -> dict[str, Any]:
    """Each of your meters' bill so far this local month and, once a day of it has data, its
    projection to the month's end, with the hours it is based on."""
    with raw_connection() as conn:
        meters = billing.current_cycle(
            conn, current_account().id, datetime.now(UTC), _settings().billing_tax_rate
        )
    return {"currency": CURRENCY, "meters": meters}


@bp.get("/overdue")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(OverdueInvoiceArgsSchema, location="query")
@bp.response(200, InvoicePageSchema)
def overdue(args: dict[str, Any]) -> dict[str, Any]:
    """List overdue invoices."""
    account = current_account()
    with session_scope() as session:
        page = billing.list_invoices(
            session,
            account.id,
            account.role,
            billing.InvoiceFilters(status=OVERDUE, region=args.get("region")),
            page=args["page"],
            page_size=args["page_size"],
        )
    return page_body(page.items, page.total, args)


@bp.get("/analytics")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(BillingAnalyticsArgsSchema, location="query")
@bp.response(200, BillingAnalyticsSchema)
def analytics(args: dict[str, Any]) -> billing.PeriodAnalytics:
    """Invoice counts by status, energy and amounts billed, paid, outstanding and overdue."""
    with session_scope() as session:
        return billing.analytics(session, args.get("period"))


@bp.post("/runs")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(BillingRunSchema)
@bp.response(202, BillingRunAcceptedSchema)
def run_billing(body: dict[str, Any]) -> dict[str, Any]:
    """Invoice a month now (on a worker). Re-running a month bills only meters not yet billed.

    Only a month before the current UTC month; a region whose local month has not ended an
    hour ago is left for a later run."""
    if body["period"] >= datetime.now(UTC).strftime("%Y-%m"):
        raise InvalidInputError(
            "that month has not ended", {"period": ["must be before the current month"]}
        )
    result = generate_invoices.apply_async(kwargs={"period": body["period"]})
    with session_scope() as session:
        audit.record(
            session,
            current_actor(),
            "billing.run",
            "billing_period",
            body["period"],
            {"taskId": result.id},
        )
    return {"period": body["period"], "task_id": result.id}


@bp.get("/export.csv")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(InvoiceExportArgsSchema, location="query")
@bp.response(200, {"type": "string"}, content_type="text/csv")
def export_csv(args: dict[str, Any]) -> Response:
    """Export invoices as CSV (one row per invoice, amounts in paise)."""
    with session_scope() as session:
        body = billing.export_csv(session, args.get("period"), args.get("status"))
    name = args.get("period") or "all"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="invoices-{name}.csv"'},
    )
