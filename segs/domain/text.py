"""Rules for text that arrives from outside."""

from __future__ import annotations

import unicodedata


def has_control_characters(value: str) -> bool:
    """Whether *value* holds a control character (C0, DEL or C1; NUL included)."""
    return any(unicodedata.category(char) == "Cc" for char in value)
