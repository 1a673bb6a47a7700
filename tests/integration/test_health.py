"""GET /health, /ready and /metrics."""

from __future__ import annotations

import re

import pytest

from tests.support import now_us
from tests.support import post_batch
from tests.support import reading

pytestmark = pytest.mark.integration


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert set(body) == {"status", "uptimeSeconds"}


def test_ready_when_every_dependency_answers(client, app):
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"postgres": "up", "redis": "up", "broker": "up"}
    if app.config["SEGS_SETTINGS"].broker_url.startswith("amqp"):
        assert "warnings" not in body
    else:
        # The test Redis keeps no append-only file (.ci/run starts it so): ready, but warned.
        [warning] = body["warnings"]
        assert "keeps no append-only file (appendonly no)" in warning
        assert "use RabbitMQ, or Redis with appendonly yes and appendfsync always" in warning
        # Anyone may read /ready: the servers are named by role, not by address.
        assert "the broker's Redis" in warning
        assert "localhost" not in warning and "6379" not in warning


METRICS_AUTH = {"Authorization": "Bearer test-metrics-token"}  # SEGS_METRICS_TOKEN in conftest


def test_metrics_need_the_token(client, app):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    # Without a configured token there are no metrics to have.
    from dataclasses import replace

    from segs.web import create_app

    untokened = create_app(replace(app.config["SEGS_SETTINGS"], metrics_token=None))
    assert untokened.test_client().get("/metrics", headers=METRICS_AUTH).status_code == 404


def _accepted_total(client) -> float:
    response = client.get("/metrics", headers=METRICS_AUTH)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    match = re.search(
        r"^segs_readings_accepted_total (\S+)$", response.get_data(as_text=True), re.M
    )
    assert match, response.get_data(as_text=True)[:2000]
    return float(match.group(1))


def test_metrics_count_accepted_readings(client, clean_state):
    before = _accepted_total(client)
    ts = now_us() - 120_000_000
    status, body = post_batch(
        client,
        [
            reading("MET-1", "Pune-West", ts, 1.0),
            reading("MET-2", "Pune-West", ts, 2.0),
            reading("MET-1", "Pune-West", ts, 1.0),  # duplicate: not accepted
        ],
    )
    assert (status, body["accepted"], body["duplicates"]) == (202, 2, 1)
    assert _accepted_total(client) == before + 2
    text = client.get("/metrics", headers=METRICS_AUTH).get_data(as_text=True)
    assert re.search(r'^segs_readings_duplicate_total\{stage="api"\} \S+$', text, re.M)
