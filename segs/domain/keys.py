"""What makes a JWT signing key acceptable: long, random-looking, and not a published one.

A key cannot be proven random; this refuses what is surely not: short keys, keys drawn from a
small alphabet or few distinct characters, and the development values written in this
repository (anyone can read them, so a token signed with one can be forged by anyone).
"""

from __future__ import annotations

import math
import string

# Values that appear in this repository's history; never accepted outside the tests.
KNOWN_DEVELOPMENT_KEYS = frozenset(
    {
        "segs-development-only-signing-key-do-not-deploy",
        "segs-dev-only-not-a-secret",
        "change-me",
        "changeme",
        "secret",
    }
)
MIN_KEY_BYTES = 32
MIN_KEY_BITS = 256
MIN_DISTINCT_CHARACTERS = 12

_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
_BASE64 = set(string.ascii_letters + string.digits + "-_+/=")


def _alphabet_size(key: str) -> int:
    """The size of the smallest usual alphabet the key is written in (hex, base64, printable)."""
    if all(char in string.hexdigits for char in key) and (
        key.islower() or key.isupper() or key.isdigit()
    ):
        return 16
    if (
        set(key) <= _BASE64
        and any(char.islower() for char in key)
        and any(char.isupper() for char in key)
    ):
        # Base64 or base64url (secrets.token_urlsafe): a random one may lack digits or
        # punctuation by chance (about 1 key in 1,700 of 43 characters), not its alphabet.
        return 64
    size = sum(len(chars) for chars in _CLASSES if any(char in chars for char in key))
    others = {char for char in key if not any(char in chars for chars in _CLASSES)}
    if others:
        size += 2 if others <= set("-_+/=") else 33
    return max(size, 2)


def estimated_bits(key: str) -> float:
    """An upper bound of the key's entropy: its length times the bits of its alphabet."""
    return len(key) * math.log2(_alphabet_size(key))


def signing_key_problem(key: str | None) -> str | None:
    """Why *key* must not sign tokens, or None when it may."""
    if not key:
        return "JWT_SECRET_KEY is not set"
    if key in KNOWN_DEVELOPMENT_KEYS or key.lower().startswith("segs-dev"):
        return "JWT_SECRET_KEY is a published development value"
    if len(key.encode()) < MIN_KEY_BYTES:
        return f"JWT_SECRET_KEY must be at least {MIN_KEY_BYTES} bytes"
    if len(set(key)) < MIN_DISTINCT_CHARACTERS or estimated_bits(key) < MIN_KEY_BITS:
        return f"JWT_SECRET_KEY must hold at least {MIN_KEY_BITS} random bits"
    return None
