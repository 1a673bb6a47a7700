"""One-time email codes: how they are made, stored (as a keyed hash) and compared, and the mail
that carries them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a code purpose, not a password

CODE_DIGITS = 6
CODE_PATTERN = re.compile(rf"^\d{{{CODE_DIGITS}}}$")


@dataclass(frozen=True)
class OutgoingMail:
    """A plain-text message to one recipient."""

    to: str
    subject: str
    body: str


def new_code() -> str:
    """A uniformly random 6-digit code from the operating system's secure source."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(key: str, purpose: str, account_id: str, code: str) -> str:
    """HMAC-SHA256 of the code, bound to its account and purpose (64 hex characters).

    Binding the purpose and account means a stolen row or a code for one flow proves nothing
    in another; the key means the 10^6 possible codes cannot be tried offline.
    """
    message = f"{purpose}:{account_id}:{code}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def digests_match(stored: str, candidate: str) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(stored.encode(), candidate.encode())


def code_mail(purpose: str, to: str, code: str, ttl_s: int) -> OutgoingMail:
    """The message that sends *code* to *to*.

    It quotes nothing the registrant typed (not even the name): whoever registers chooses the
    address, so free text here would let anyone mail anything to anyone from SEGS.
    """
    minutes = max(1, ttl_s // 60)
    validity = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if purpose == VERIFY_EMAIL:
        subject = "Your SEGS verification code"
        action = "confirm your email address and choose your password"
        ignore = "If you did not create a SEGS account, you can ignore this message."
    elif purpose == RESET_PASSWORD:
        subject = "Your SEGS password reset code"
        action = "choose a new password"
        ignore = (
            "If you did not ask to reset your password, ignore this message: your password "
            "stays as it is."
        )
    else:
        raise ValueError(f"unknown code purpose {purpose!r}")
    body = (
        "Hello,\n\n"
        f"Your code is {code}. Enter it in SEGS to {action}.\n\n"
        f"The code is valid for {validity} and can be used once. Never share it: SEGS staff "
        "will not ask you for it.\n\n"
        f"{ignore}\n"
    )
    return OutgoingMail(to=to, subject=subject, body=body)


def account_exists_mail(to: str) -> OutgoingMail:
    """To the owner of an address someone tried to register again."""
    return OutgoingMail(
        to=to,
        subject="Someone tried to register your email address at SEGS",
        body=(
            "Hello,\n\n"
            "Someone asked to create a SEGS account with this email address, which already has "
            "one. No new account was made and nothing about yours changed.\n\n"
            "If it was you, log in, or ask for a password reset if you forgot the password. "
            "If it was not you, you can ignore this message.\n"
        ),
    )


def attack_warning_mail(to: str) -> OutgoingMail:
    """To the owner of an account whose password is being guessed."""
    return OutgoingMail(
        to=to,
        subject="Failed logins to your SEGS account",
        body=(
            "Hello,\n\n"
            "There have been many failed attempts to log in to your SEGS account in the last "
            "minutes. Your password was not accepted and your account is not locked: you can "
            "still log in as usual.\n\n"
            "If these attempts were not yours, someone may be guessing your password: choose a "
            "long, unique one (Change password, or Forgot password).\n"
        ),
    )
