"""Bodies and query arguments of the billing endpoints. Amounts are integers in paise."""

from __future__ import annotations

from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from segs.domain.billing import INVOICE_STATUSES
from segs.domain.billing import PeriodError
from segs.domain.billing import parse_period
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema


class Period(fields.String):
    """A billing month, YYYY-MM."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_period(text)
        except PeriodError as exc:
            raise ValidationError(str(exc)) from exc
        return text


def _amount(description: str) -> fields.Integer:
    return fields.Integer(metadata={"description": f"{description}, paise (1/100 INR)"})


def _decimal(description: str) -> fields.Decimal:
    return fields.Decimal(as_string=True, allow_none=True, metadata={"description": description})


class InvoiceLineItemSchema(CamelSchema):
    position = fields.Integer()
    kind = fields.String(metadata={"description": "energy | demand"})
    description = fields.String()
    tariff_id = fields.Integer(allow_none=True, metadata={"description": "price history row"})
    tou_period = fields.String(allow_none=True)
    quantity = _decimal("kWh (energy) or kW (demand)")
    unit_price = _decimal("INR per kWh or per kW")
    amount_minor = _amount("quantity x unit price, rounded half-up")


class InvoicePaymentSchema(CamelSchema):
    id = fields.Integer()
    invoice_id = fields.Integer()
    amount_minor = _amount("the payment")
    method = fields.String()
    reference = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "pending | succeeded | failed"})
    provider = fields.String(
        allow_none=True,
        metadata={"description": "the payment provider; null when staff recorded it"},
    )
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)


class InvoiceSchema(CamelSchema):
    id = fields.Integer()
    invoice_number = fields.String()
    meter_id = fields.String()
    user_id = fields.UUID(allow_none=True)
    region = fields.String()
    period = fields.String(metadata={"description": "YYYY-MM in the region's local time"})
    period_start = fields.DateTime()
    period_end = fields.DateTime()
    timezone = fields.String()
    currency = fields.String()
    energy_kwh = _decimal("kWh")
    energy_minor = _amount("energy lines")
    demand_kw = _decimal("highest 15-minute average kW")
    demand_minor = _amount("demand charge")
    tax_rate = _decimal("fraction")
    tax_minor = _amount("tax")
    total_minor = _amount("total")
    paid_minor = _amount("paid so far")
    status = fields.String(metadata={"description": " | ".join(INVOICE_STATUSES)})
    issued_at = fields.DateTime()
    due_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    disputed_at = fields.DateTime(allow_none=True)
    dispute_reason = fields.String(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    resolution = fields.String(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)


class InvoiceDetailSchema(InvoiceSchema):
    lines = fields.List(fields.Nested(InvoiceLineItemSchema))
    payments = fields.List(fields.Nested(InvoicePaymentSchema))


InvoicePageSchema = page_schema(InvoiceSchema, "InvoicePage")


class InvoiceQueryArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(INVOICE_STATUSES))
    period = Period()
    meter_id = fields.String()
    region = fields.String()


class OverdueInvoiceArgsSchema(PageArgsSchema):
    region = fields.String()


class InvoiceExportArgsSchema(CamelSchema):
    period = Period()
    status = fields.String(validate=validate.OneOf(INVOICE_STATUSES))


class BillingAnalyticsArgsSchema(CamelSchema):
    period = Period(metadata={"description": "YYYY-MM; default every period"})


class BillingAnalyticsSchema(CamelSchema):
    period = fields.String(allow_none=True)
    invoices = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    energy_kwh = _decimal("kWh billed (cancelled invoices excluded)")
    billed_minor = _amount("total billed")
    paid_minor = _amount("total paid")
    outstanding_minor = _amount("billed - paid")
    overdue_minor = _amount("outstanding on overdue invoices")


def _payment_amount() -> fields.Integer:
    return fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=10**15),
        metadata={"description": "must equal the outstanding balance, paise"},
    )


class StartPaymentSchema(CamelSchema):
    """A customer's payment through the provider."""

    amount_minor = _payment_amount()
    method = fields.String(required=True, validate=validate.OneOf(("card", "upi")))


class RecordPaymentSchema(CamelSchema):
    """A payment staff received."""

    amount_minor = _payment_amount()
    method = fields.String(
        required=True, validate=validate.OneOf(("card", "upi", "bank_transfer", "cash"))
    )
    reference = fields.String(validate=validate.Length(max=128))


class PaymentCallbackSchema(CamelSchema):
    """What the payment provider reports about a payment it was given (its reference)."""

    reference = fields.String(required=True, validate=validate.Length(min=1, max=128))
    status = fields.String(required=True, validate=validate.OneOf(("succeeded", "failed")))
    amount_minor = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=10**15)
    )


class PaymentCallbackResultSchema(CamelSchema):
    payment_id = fields.Integer()
    invoice_id = fields.Integer()
    status = fields.String()


class InvoiceReasonSchema(CamelSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class DisputeResolutionSchema(CamelSchema):
    outcome = fields.String(
        required=True,
        validate=validate.OneOf(("uphold", "void")),
        metadata={"description": "uphold: the bill stands (payable); void: it is cancelled"},
    )
    resolution = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class BillingRunSchema(CamelSchema):
    period = Period(required=True)


class BillingRunAcceptedSchema(CamelSchema):
    period = fields.String()
    task_id = fields.String()


class CycleProjectionSchema(CamelSchema):
    """How projectedMinor is estimated. Hours are decimal strings in 0.25 h steps (15-minute
    intervals): elapsed = ended since the month began, covered = those with data billed to you,
    remaining = the rest of the month from the interval in progress."""

    method = fields.String(
        metadata={
            "description": "pro_rata_covered_hours: energy so far / covered hours x (covered + "
            "remaining hours); the demand charge is the peak so far, not scaled; tax on the sum"
        }
    )
    period_hours = _decimal("hours in the local month (743 to 745 across DST)")
    elapsed_hours = _decimal("hours of the month that have ended")
    covered_hours = _decimal("hours with data, the basis of the projection")
    remaining_hours = _decimal("hours still to come, projected at the covered hours' pace")
    minimum_covered_hours = _decimal("covered hours needed before anything is projected")
    projected_energy_minor = fields.Integer(
        allow_none=True, metadata={"description": "projected energy charge, paise; null: none"}
    )
    reason = fields.String(
        allow_none=True, metadata={"description": "why nothing is projected; null when it is"}
    )


class MeterCycleEstimateSchema(CamelSchema):
    meter_id = fields.String()
    region = fields.String()
    period = fields.String()
    period_start = fields.DateTime()
    period_end = fields.DateTime()
    energy_kwh = _decimal("kWh in the month's ended 15-minute intervals")
    so_far_minor = _amount("the bill of the month's ended 15-minute intervals, with tax")
    projected_minor = fields.Integer(
        allow_none=True,
        metadata={
            "description": "the bill projected to the month's end, with tax, paise; null with "
            "less data than projection.minimumCoveredHours (see projection.reason)"
        },
    )
    projection = fields.Nested(CycleProjectionSchema)


class CurrentCycleSchema(CamelSchema):
    currency = fields.String()
    meters = fields.List(fields.Nested(MeterCycleEstimateSchema))
