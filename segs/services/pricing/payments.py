"""Payments of invoices. A customer cannot settle an invoice by saying so:

- staff record a payment they received (cash, a bank transfer...): the invoice is paid;
- a customer's "pay" starts a payment with the payment provider: a pending payment, with the
  reference the provider's checkout uses; the invoice stays unpaid;
- the provider's callback, signed with SEGS_PAYMENT_CALLBACK_SECRET over a timestamp and the
  body (segs.domain.signatures), settles the pending payment or marks it failed.

Every payment, whichever way it comes, is written to the audit log in the same transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain.billing import FAILED
from segs.domain.billing import PAID
from segs.domain.billing import PENDING
from segs.domain.billing import SUCCEEDED
from segs.domain.billing import may_become
from segs.domain.signatures import signature_problem
from segs.errors import AuthenticationError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Invoice
from segs.models import InvoicePayment
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.pricing.billing import get_invoice
from segs.services.pricing.billing import require_transition


def _require_payable(invoice: Invoice, amount_minor: int) -> None:
    require_transition(invoice, PAID)
    outstanding = invoice.total_minor - invoice.paid_minor
    if amount_minor != outstanding:
        raise InvalidInputError(
            "the amount must equal the outstanding balance",
            {"amount_minor": [f"must be {outstanding}"]},
        )


def _settle(invoice: Invoice, payment: InvoicePayment, now: datetime) -> None:
    payment.status = SUCCEEDED
    payment.paid_at = now
    invoice.paid_minor += payment.amount_minor
    invoice.status = PAID
    invoice.paid_at = now


def _details(payment: InvoicePayment, **extra: Any) -> dict[str, Any]:
    return {
        "paymentId": payment.id,
        "amountMinor": payment.amount_minor,
        "method": payment.method,
        "status": payment.status,
        "provider": payment.provider,
        "reference": payment.reference,
        **extra,
    }


def record_payment(
    session: Session,
    actor: Actor,
    invoice_id: int,
    amount_minor: int,
    method: str,
    reference: str | None,
    now: datetime,
) -> Invoice:
    """Staff record a payment received for the whole outstanding balance; the invoice is paid.

    :raises NotFoundError, ConflictError (not payable), InvalidInputError (another amount).
    """
    assert actor.account is not None
    invoice = get_invoice(session, actor.account.id, actor.account.role, invoice_id, lock=True)
    _require_payable(invoice, amount_minor)
    payment = InvoicePayment(
        invoice_id=invoice.id,
        amount_minor=amount_minor,
        method=method,
        reference=reference,
        paid_by=actor.id,
        created_at=now,
    )
    session.add(payment)
    _settle(invoice, payment, now)
    session.flush()
    record_audit(
        session, actor, "invoice.payment.recorded", "invoice", invoice.id, _details(payment)
    )
    return invoice


def start_payment(
    session: Session,
    settings: Settings,
    actor: Actor,
    invoice_id: int,
    amount_minor: int,
    method: str,
    now: datetime,
) -> InvoicePayment:
    """A customer starts paying an own invoice through the provider: a pending payment (the
    one already pending, if any), settled only by the provider's signed callback.

    :raises NotFoundError, ConflictError (not payable), InvalidInputError (another amount).
    """
    assert actor.account is not None
    invoice = get_invoice(session, actor.account.id, actor.account.role, invoice_id, lock=True)
    _require_payable(invoice, amount_minor)
    pending = session.scalar(
        select(InvoicePayment).where(
            InvoicePayment.invoice_id == invoice.id, InvoicePayment.status == PENDING
        )
    )
    if pending is not None:
        return pending
    payment = InvoicePayment(
        invoice_id=invoice.id,
        amount_minor=amount_minor,
        method=method,
        reference=f"{settings.payment_provider}_{secrets.token_hex(12)}",
        paid_by=actor.id,
        status=PENDING,
        provider=settings.payment_provider,
        created_at=now,
    )
    session.add(payment)
    session.flush()
    record_audit(
        session, actor, "invoice.payment.started", "invoice", invoice.id, _details(payment)
    )
    return payment


@dataclass(frozen=True)
class CallbackResult:
    payment_id: int
    invoice_id: int
    status: str


def provider_callback(
    session: Session,
    settings: Settings,
    provider: str,
    body: bytes,
    message: dict[str, Any],
    timestamp: str | None,
    signature: str | None,
    client_address: str | None,
    now: datetime,
) -> CallbackResult:
    """Apply a payment provider's signed callback: *body* as received (the signature covers
    it), *message* its validated fields ``reference``, ``status`` and ``amount_minor``.

    Repeating a callback changes nothing (the provider retries until it gets a 2xx).

    :raises NotFoundError: an unknown provider (or none configured), or no such payment.
    :raises AuthenticationError: INVALID_SIGNATURE, a missing, wrong or stale signature.
    :raises InvalidInputError: the amount differs from the payment's.
    """
    secret = settings.payment_callback_secret
    if secret is None or provider != settings.payment_provider:
        raise NotFoundError(f"no payment provider {provider!r}")
    problem = signature_problem(secret, timestamp, body, signature, now.timestamp())
    if problem is not None:
        raise AuthenticationError(f"the callback is refused: {problem}", code="INVALID_SIGNATURE")
    payment = session.scalar(
        select(InvoicePayment)
        .where(
            InvoicePayment.provider == provider, InvoicePayment.reference == message["reference"]
        )
        .with_for_update()
    )
    if payment is None:
        raise NotFoundError(f"no payment {message['reference']!r}")
    if payment.amount_minor != message["amount_minor"]:
        raise InvalidInputError(
            "the amount is not the payment's", {"amount_minor": [f"must be {payment.amount_minor}"]}
        )
    if payment.status != PENDING:
        return CallbackResult(payment.id, payment.invoice_id, payment.status)
    invoice = session.scalar(
        select(Invoice).where(Invoice.id == payment.invoice_id).with_for_update()
    )
    assert invoice is not None
    provider_actor = Actor(None, client_address)
    extra: dict[str, Any] = {}
    if message["status"] == FAILED:
        payment.status = FAILED
        action = "invoice.payment.failed"
    elif (
        may_become(invoice.status, PAID)
        and invoice.total_minor - invoice.paid_minor == payment.amount_minor
    ):
        _settle(invoice, payment, now)
        action = "invoice.payment.settled"
    else:
        # Paid meanwhile (staff recorded a payment): the money came, the invoice stays as it
        # is, and the audit entry says a refund is due.
        payment.status = SUCCEEDED
        payment.paid_at = now
        action, extra = "invoice.payment.unapplied", {"invoiceStatus": invoice.status}
    record_audit(session, provider_actor, action, "invoice", invoice.id, _details(payment, **extra))
    return CallbackResult(payment.id, invoice.id, payment.status)
