"""Email delivery, off the request path: the API enqueues, a worker talks to SMTP."""

from __future__ import annotations

import smtplib

from segs.celery_app import app
from segs.domain.codes import OutgoingMail
from segs.services.alerts import mail

MAX_RETRIES = 5


@app.task(
    name="segs.tasks.mail.send_email",
    queue="default",
    # A server that is down or slow (OSError covers refused connections and timeouts) or
    # answers with a temporary SMTP error gets the message again, after 1, 2, 4, 8, 16 s...
    autoretry_for=(smtplib.SMTPException, OSError),
    # ...but a recipient the server refuses outright will be refused again.
    dont_autoretry_for=(smtplib.SMTPRecipientsRefused,),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=MAX_RETRIES,
)
def send_email(to: str, subject: str, body: str) -> None:
    """Send one plain-text message. A redelivery may send it twice, which is harmless here."""
    mail.send_email(app.segs_settings, OutgoingMail(to=to, subject=subject, body=body))
