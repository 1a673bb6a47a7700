"""JSON responses that write Decimal values as JSON numbers, digit for digit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

from segs.web.parsing import loads_json


def _number_or_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} is not a JSON number")
        # Fragment embeds the text as is: no detour through float, so no digit is lost.
        text = str(value)
        return orjson.Fragment(format(value, "f") if "E" in text else text)
    return DefaultJSONProvider.default(value)


class SegsJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a Decimal is a number (Flask writes it as a string).

    Energy, power and money are Decimal from PostgreSQL to the response; a client reads
    ``4.123456``, not ``"4.123456"``. Everything else is written as Flask writes it.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
        if kwargs.get("sort_keys", self.sort_keys):
            option |= orjson.OPT_SORT_KEYS
        if kwargs.get("indent"):
            option |= orjson.OPT_INDENT_2
        return orjson.dumps(obj, default=_number_or_default, option=option).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse JSON; nesting too deep to parse is invalid JSON (Flask answers 400)."""
        return loads_json(s)
