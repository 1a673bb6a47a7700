"""Ingestion keys: what a meter or a head-end presents, and what it may send.

A key is ``segs_`` and 43 URL-safe characters (32 random bytes), so it fits a URL path segment.
Only its SHA-256 digest is stored: the key is random enough that a slow password hash would
add nothing but cost on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from limits import parse_many

KEY_PREFIX = "segs_"
# What listings show of a key, so an operator can tell keys apart without seeing one whole.
SHOWN_PREFIX_LENGTH = 12
_WELL_FORMED = re.compile(r"^segs_[A-Za-z0-9_-]{43}$(?!\n)")

DEVICE = "device"
HEAD_END = "head-end"


def new_plain_key() -> str:
    """A fresh key, shown once to whoever creates it."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(plain: str) -> str:
    """What the registry stores and looks a key up by."""
    return hashlib.sha256(plain.encode()).hexdigest()


def shown_prefix(plain: str) -> str:
    return plain[:SHOWN_PREFIX_LENGTH]


def is_well_formed(text: str) -> bool:
    return _WELL_FORMED.match(text) is not None


def looks_like_api_token(text: str) -> bool:
    """A JWT (header.payload.signature): someone sent their API login instead of a key."""
    return text.count(".") == 2


# A key's request limit: one rate, of at least one request, over at most a day.
_MOST_REQUESTS = 1_000_000_000
_LONGEST_WINDOW_S = 86_400


def rate_limit_problem(text: str) -> str | None:
    """Why *text* is not a usable request limit for a key, or None if it is."""
    try:
        items = parse_many(text)
    except ValueError:
        return "e.g. '100 per second' or '6000/minute'"
    if len(items) != 1:
        return "one rate only, e.g. '100 per second'"
    item = items[0]
    if not 1 <= item.amount <= _MOST_REQUESTS or item.get_expiry() > _LONGEST_WINDOW_S:
        return f"1 to {_MOST_REQUESTS:,} requests per period of at most a day"
    return None


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a verified key may send: one meter's readings (a device key), or the readings of
    the meters of some regions (a head-end key; every region when *regions* is None)."""

    key_id: str
    name: str
    meter_id: str | None = None
    regions: frozenset[str] | None = None
    # The key's own request limit (Flask-Limiter notation); None: SEGS_INGESTION_RATE_LIMIT.
    rate_limit: str | None = None
    # End of a rotation's overlap (epoch µs): the key stops working then.
    expires_at_us: int | None = None

    @property
    def kind(self) -> str:
        return DEVICE if self.meter_id is not None else HEAD_END

    def covers(self, region: str) -> bool:
        """Whether a head-end key may send (and register) meters of *region*."""
        return self.regions is None or region in self.regions

    def has_expired(self, now_us: int) -> bool:
        return self.expires_at_us is not None and now_us >= self.expires_at_us
