"""Rules for text that arrives from outside."""

from __future__ import annotations

import unicodedata


def has_control_characters(value: str) -> bool:
    """Whether *value* holds a control character (C0, DEL or C1; NUL included)."""
    return any(unicodedata.category(char) == "Cc" for char in value)


# A spreadsheet takes a cell starting with one of these for a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """*value*, prefixed with an apostrophe when a spreadsheet would run it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
