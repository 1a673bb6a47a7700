"""The one rule for the ids meters send and admins register: meter ids and reading ids.

An id is 1 to 128 characters: ASCII letters, digits, '.', '_', ':' and '-', starting with a
letter or digit. So an id is always one URL path segment, prints as itself in a log, a CSV cell
or a web page, and cannot start a spreadsheet formula ('=', '+', '-', '@').
"""

from __future__ import annotations

import re

ID_MAX_LENGTH = 128
_ID = rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{ID_MAX_LENGTH - 1}}}"
# "(?!\n)": in Python a bare "$" also matches before a final newline, so "m1\n" would pass.
# The lookahead keeps the pattern valid for JSON Schema (ECMA) readers of the OpenAPI document,
# where "\Z" would mean a literal "Z".
ID_PATTERN = rf"^{_ID}$(?!\n)"
ID_RULE = (
    f"must be 1 to {ID_MAX_LENGTH} letters, digits, '.', '_', ':' or '-', "
    "starting with a letter or digit"
)

_ONE_ID = re.compile(ID_PATTERN)
_IDS_ONE_PER_LINE = re.compile(rf"(?:{_ID}\n)*{_ID}")


def is_valid_id(text: str) -> bool:
    """Whether *text* follows the id rule."""
    return _ONE_ID.match(text) is not None


def all_valid_ids(ids: list[str]) -> bool:
    """Whether every one of *ids* follows the rule.

    One regular expression over all of them, one per line: for a batch of 500 readings this is
    a tenth of the cost of matching 1,000 ids one by one, which was a tenth of the API's time.
    """
    if not ids:
        return True
    joined = "\n".join(ids)
    # An id holding a newline would make two lines that may each pass: count the lines too.
    return joined.count("\n") == len(ids) - 1 and _IDS_ONE_PER_LINE.fullmatch(joined) is not None
