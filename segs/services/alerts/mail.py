"""Outgoing email over SMTP (verification and reset codes)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from email.utils import make_msgid

from segs.config import Settings
from segs.domain.codes import OutgoingMail


def build_message(settings: Settings, mail: OutgoingMail) -> EmailMessage:
    """The MIME message for *mail*, from the configured sender."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="segs.localhost")
    message.set_content(mail.body)
    return message


def send_email(settings: Settings, mail: OutgoingMail) -> None:
    """Hand *mail* to the configured SMTP server; raise on any failure (the task retries)."""
    message = build_message(settings, mail)
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
    ) as smtp:
        if settings.smtp_starttls:
            # smtplib's own default context does not check the certificate; this one does.
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)
