"""Timestamped HMAC-SHA256 signatures, for the webhooks SEGS sends and the payment callbacks it
receives.

The signed message is ``<unix seconds>.<body>``: a receiver that checks the signature and that
the timestamp is recent refuses a captured request replayed later, and one that also remembers
the signatures it accepted within the tolerance refuses a replay inside it.
"""

from __future__ import annotations

import hashlib
import hmac

# How old (or how far ahead) a signed timestamp may be when it is checked.
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str,
    timestamp: str | None,
    body: bytes,
    presented: str | None,
    now_s: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str | None:
    """Why a signed request must be refused, or None when its signature holds and is fresh."""
    if not timestamp or not presented:
        return "the timestamp or signature header is missing"
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "the timestamp is not a number of seconds"
    if abs(now_s - int(timestamp)) > tolerance_s:
        return f"the timestamp is more than {tolerance_s} s away from now"
    expected = signature(secret, int(timestamp), body)
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        return "the signature does not match"
    return None
