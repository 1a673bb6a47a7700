"""How request bodies are parsed: JSON too deeply nested for the parser is a 400, not a 500.

Python's json module parses recursively, so a body of 100,000 nested arrays raises
RecursionError, which nothing below the app turned into a client error. Every JSON read goes
through :func:`loads_json`: Flask's request.get_json (via the JSON provider, used by the rate
limiter's keys) and webargs, which flask-smorest's ``@bp.arguments`` use (via :class:`Blueprint`).
"""

from __future__ import annotations

import json
import typing

import flask
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser
from webargs.flaskparser import is_json_request


def loads_json(text: str | bytes) -> typing.Any:
    """json.loads, with nesting too deep to parse, or an integer too long to convert, reported
    as invalid JSON (a JSONDecodeError, which webargs answers 400)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except (RecursionError, ValueError) as exc:
        # ValueError: Python refuses integers of more than 4,300 digits (CVE-2020-10735).
        message = (
            "the JSON is nested too deeply"
            if isinstance(exc, RecursionError)
            else "the JSON holds a number too long to read"
        )
        # A non-empty document: webargs takes an empty one for a missing body.
        document = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError(message, document or " ", 0) from exc


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with :func:`loads_json`."""

    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        if not is_json_request(req):
            return core.missing
        return loads_json(req.get_data(cache=True))


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the parser above: every REST resource uses this one."""

    ARGUMENTS_PARSER = JsonBodyParser()
