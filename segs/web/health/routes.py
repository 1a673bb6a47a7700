"""``/health`` says the process is up; ``/ready`` says its dependencies answer."""

from __future__ import annotations

import hmac
import time

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from sqlalchemy import text

from segs import metrics
from segs.celery_app import app as celery_app
from segs.db import get_engine
from segs.redis_client import get_redis
from segs.services.spine.durability import redis_broker_risk
from segs.web.errors import error_response

bp = Blueprint("health", __name__)

_STARTED = time.monotonic()


@bp.get("/health")
def health() -> Response:
    """Answer 200 while the process serves requests."""
    return jsonify({"status": "ok", "uptimeSeconds": round(time.monotonic() - _STARTED, 1)})


def _check_postgres() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_redis() -> None:
    get_redis().ping()


def _check_broker() -> None:
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)


@bp.get("/ready")
def ready() -> Response:
    """Answer 200 when PostgreSQL, Redis and the broker all answer, else 503 naming the failures;
    ``warnings`` says what a Redis restart would lose of the accepted readings, if anything."""
    checks = {}
    for name, check in (
        ("postgres", _check_postgres),
        ("redis", _check_redis),
        ("broker", _check_broker),
    ):
        try:
            check()
            checks[name] = "up"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            checks[name] = f"down: {exc.__class__.__name__}"
    ok = all(state == "up" for state in checks.values())
    body: dict[str, object] = {"status": "ready" if ok else "not_ready", "checks": checks}
    settings = current_app.config["SEGS_SETTINGS"]
    # Anyone may ask /ready: the servers are named by role, never by host and port.
    risk = redis_broker_risk(settings.broker_url, settings.redis_url, addresses=False)
    if risk:
        # Ready all the same: it serves, but a Redis restart would lose what it accepted.
        body["warnings"] = [risk]
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    return response


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Every API process's metrics in Prometheus text format, for the holder of
    SEGS_METRICS_TOKEN (Prometheus: ``authorization: {credentials_file: ...}``); without a
    configured token they are not served."""
    token = current_app.config["SEGS_SETTINGS"].metrics_token
    if token is None:
        return error_response(404, "NOT_FOUND", "metrics are not served (SEGS_METRICS_TOKEN)")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
        response = error_response(401, "UNAUTHORIZED", "metrics need the metrics bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return Response(metrics.render_latest(), mimetype="text/plain; version=0.0.4")
