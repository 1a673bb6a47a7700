"""The one rule for the ids meters send and admins register: meter ids and reading ids.

An id is 1 to 128 characters: ASCII letters, digits, '.', '_', ':' and '-', starting with a
letter or digit. So an id is always one URL path segment, prints as itself in a log, a CSV cell
or a web page, and cannot start a spreadsheet formula ('=', '+', '-', '@').
"""

from __future__ import annotations

import re

ID_MAX_LENGTH = 128
# "(?!\n)": in Python a bare "$" also matches before a final newline, so "m1\n" would pass.
# The lookahead keeps the pattern valid for JSON Schema (ECMA) readers of the OpenAPI document,
# where "\Z" would mean a literal "Z".
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{ID_MAX_LENGTH - 1}}}$(?!\n)"
ID_RULE = (
    f"must be 1 to {ID_MAX_LENGTH} letters, digits, '.', '_', ':' or '-', "
    "starting with a letter or digit"
)

_ID = re.compile(ID_PATTERN)


def is_valid_id(text: str) -> bool:
    """Whether *text* follows the id rule."""
    return _ID.match(text) is not None
