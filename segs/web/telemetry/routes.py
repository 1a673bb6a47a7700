"""Ingestion views: read the body, hand it to the ingestion service, answer."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request

from segs.ingestion_client import submit

bp = Blueprint("telemetry", __name__, url_prefix="/telemetry")


def _answer(single: bool) -> Response:
    status, body, headers = submit(request.get_data(cache=False), single=single)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


@bp.post("")
def ingest_one() -> Response:
    """Ingest one reading (a JSON object)."""
    return _answer(single=True)


@bp.post("/batch")
def ingest_batch() -> Response:
    """Ingest a JSON array of 1 to 1000 readings."""
    return _answer(single=False)
