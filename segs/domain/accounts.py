"""Rules for account fields: the password rule, phone numbers and time zones."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import available_timezones

DEFAULT_TIMEZONE = "Asia/Kolkata"

# An account is active, or suspended by staff (it may not sign in or act until reactivated).
ACTIVE = "active"
SUSPENDED = "suspended"
STATUSES = (ACTIVE, SUSPENDED)

# The longest address SMTP can deliver to (RFC 5321), and the longest display name.
EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 100

MIN_PASSWORD_LENGTH = 10
# argon2 accepts any length; the cap keeps a single request from hashing megabytes.
MAX_PASSWORD_LENGTH = 128

# E.164: an optional "+", then up to 15 digits not starting with 0.
PHONE_PATTERN = re.compile(r"^\+?[1-9]\d{1,14}$")


def password_problems(password: str, email: str | None = None) -> list[str]:
    """Why *password* is not acceptable for the account *email* (empty when it is).

    The rule: 10 to 128 characters, at least one letter and one digit, and not the email
    address itself.
    """
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters long")
    if not any(char.isalpha() for char in password):
        problems.append("must contain a letter")
    if not any(char.isdigit() for char in password):
        problems.append("must contain a digit")
    if email is not None and password.strip().lower() == email.strip().lower():
        problems.append("must not be the email address")
    return problems


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    # "localtime" is whatever the host is set to, which PostgreSQL and Python may not agree on.
    return frozenset(available_timezones() - {"localtime"})


def is_timezone(name: str) -> bool:
    """True for an IANA time zone name known to this system, such as ``Asia/Kolkata``, that
    local days and hours can be cut in (not the host's ``localtime``)."""
    return name in _timezones()


def normalize_email(email: str) -> str:
    """Accounts are keyed by the lower-cased address without surrounding spaces."""
    return email.strip().lower()
