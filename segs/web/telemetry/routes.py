"""Ingestion views: check the ingestion key and its rate limit, hand the body to ingestion.

The key travels as ``Authorization: Bearer <key>`` or, for clients that can only be given a
URL (the seed's simulator takes only INGESTION_URL), in the path, as ThingsBoard's HTTP device
API has it: ``POST /api/v1/<key>/telemetry/batch``.

Each key has its own request limit (its own, or SEGS_INGESTION_RATE_LIMIT), counted in Redis by
Flask-Limiter's rate limiter. It is checked here, after the key, rather than by the limiter's
decorator: the decorator would also read the window back for the X-RateLimit headers on every
answer, one more Redis round trip per request on the hottest path.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

import redis
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from limits import RateLimitItem
from limits import parse

from segs.domain.ingestion_keys import KeyScope
from segs.errors import error_body
from segs.ingestion_client import Answer
from segs.ingestion_client import KeyRejectedError
from segs.ingestion_client import rejected
from segs.ingestion_client import submit
from segs.ingestion_client import unavailable
from segs.ingestion_client import verify_key
from segs.services.spine.ingestion import IngestionUnavailableError
from segs.web.extensions import limiter

bp = Blueprint("telemetry", __name__)


def _presented_key(key_in_path: str | None) -> str | None:
    if key_in_path is not None:
        return key_in_path
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


@lru_cache(maxsize=64)
def _parsed(limit: str) -> RateLimitItem:
    return parse(limit)


def _over_limit(scope: KeyScope) -> Answer | None:
    """The 429 answer if this request is over its key's limit, else None (and it counts)."""
    item = _parsed(scope.rate_limit or current_app.config["SEGS_SETTINGS"].ingestion_rate_limit)
    if limiter.limiter.hit(item, "ingestion-key", scope.key_id):
        return None
    reset_at = limiter.limiter.get_window_stats(item, "ingestion-key", scope.key_id).reset_time
    retry_after = max(1, math.ceil(reset_at - time.time()))
    message = f"this ingestion key is over its limit of {item}"
    return 429, error_body("TOO_MANY_REQUESTS", message), {"Retry-After": str(retry_after)}


def _answer(key_in_path: str | None, *, single: bool) -> Response:
    try:
        scope = verify_key(_presented_key(key_in_path))
        status, body, headers = _over_limit(scope) or submit(
            request.get_data(cache=False), single=single, scope=scope
        )
    except KeyRejectedError as exc:
        status, body, headers = rejected(exc)
    except IngestionUnavailableError as exc:
        status, body, headers = unavailable(exc)
    except redis.RedisError:
        status, body, headers = unavailable(
            IngestionUnavailableError(
                "Redis is unavailable", current_app.config["SEGS_SETTINGS"].retry_after_s
            )
        )
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


@bp.post("/telemetry")
@bp.post("/api/v1/<key>/telemetry")
def ingest_one(key: str | None = None) -> Response:
    """Ingest one reading (a JSON object)."""
    return _answer(key, single=True)


@bp.post("/telemetry/batch")
@bp.post("/api/v1/<key>/telemetry/batch")
def ingest_batch(key: str | None = None) -> Response:
    """Ingest a JSON array of 1 to 1000 readings."""
    return _answer(key, single=False)
