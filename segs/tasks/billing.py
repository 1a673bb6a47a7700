"""Billing tasks: the monthly run (beat or on demand) and overdue marking."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from celery.utils.log import get_task_logger

from segs import metrics
from segs.celery_app import app
from segs.db import raw_connection
from segs.db import session_scope
from segs.services.pricing import billing
from segs.services.pricing import billing_run
from segs.tasks.retries import RETRY_SHORT_OUTAGES

logger = get_task_logger(__name__)


@app.task(
    name="segs.tasks.billing.generate_invoices",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def generate_invoices(period: str | None = None) -> dict[str, int | str]:
    """Invoice *period* (YYYY-MM; default: the month before the current UTC month).

    Safe twice: an invoice is unique per meter, period and owner (ON CONFLICT DO NOTHING), so a
    second run only invoices the meters the first did not.
    """
    settings = app.segs_settings
    now = datetime.now(UTC)
    period = period or billing_run.previous_month(now)
    with raw_connection() as conn:
        report = billing_run.run_billing(
            conn,
            period,
            tax_rate=settings.billing_tax_rate,
            due_days=settings.billing_due_days,
            now=now,
        )
    metrics.BILLING_RUNS.inc()
    metrics.INVOICES_CREATED.inc(report.created)
    logger.info("billing %s: %d invoices created", period, report.created)
    if report.not_ended:
        logger.info("billing %s: month not over yet in %s", period, ", ".join(report.not_ended))
    return {"period": period, "created": report.created, "meters": report.meters}


@app.task(
    name="segs.tasks.billing.mark_overdue",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def mark_overdue() -> dict[str, int]:
    """Pending invoices past their due date become overdue. Safe twice: only pending invoices
    change, so a second run finds those already overdue."""
    with session_scope() as session:
        count = billing.mark_overdue(session, datetime.now(UTC))
    return {"overdue": count}
