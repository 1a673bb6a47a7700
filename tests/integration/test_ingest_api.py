"""POST /telemetry and /telemetry/batch against the real Redis, broker and database (§3)."""

from __future__ import annotations

import json
import random
from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest
import redis

from segs.domain.ingestion_keys import KeyScope
from segs.domain.sharding import shard_for
from segs.ingestion_client import get_codec
from segs.ingestion_client import get_ingestor
from segs.redis_client import get_redis
from segs.services.spine.dedupe import RedisDedupeMarks
from segs.services.spine.ingestion import IngestionUnavailableError
from segs.services.spine.ingestion import Ingestor
from segs.tasks.queues import BacklogGuard
from segs.tasks.readings import fold_batch
from simulator.meters import build_fleet
from simulator.meters import generate_readings
from simulator.meters import iso_timestamp
from tests import support
from tests.support import MICRO
from tests.support import dedupe_marks
from tests.support import fold_one
from tests.support import ingestion_key
from tests.support import iso
from tests.support import key_header
from tests.support import now_us
from tests.support import post_batch
from tests.support import query
from tests.support import queue_depths
from tests.support import raw_count
from tests.support import reading
from tests.support import wait_processed

pytestmark = pytest.mark.integration

REGION = "Pune-West"


@pytest.fixture
def ts(clean_state) -> int:
    """A whole second two minutes ago."""
    now = now_us()
    return now - now % MICRO - 120 * MICRO


def test_mixed_batch_answers_202_with_exact_counts(client, ts):
    week = 7 * 86400 * MICRO
    batch = [
        reading("API-1", REGION, ts, 1.5),
        reading("API-2", REGION, ts, 0.0, energy=0.0, voltage=230.0),
        reading("API-1", REGION, ts, 1.5),  # exact duplicate inside the batch
        reading("API-3", REGION, ts, -2.0),
        reading("API-3", "Atlantis", ts, 2.0),
        reading("API-3", REGION, ts - week - 60 * MICRO, 2.0),
        reading("API-3", REGION, ts + 3600 * MICRO, 2.0),
        {k: v for k, v in reading("API-3", REGION, ts, 2.0).items() if k != "meterId"},
        # The same instant as index 1, written at +05:30: a duplicate.
        reading("API-2", REGION, ts, 9.0, timestamp=iso(ts, offset="+05:30")),
        "not a reading",
    ]
    status, body = post_batch(client, batch)
    assert status == 202
    assert body == {
        "accepted": 2,
        "duplicates": 2,
        "rejected": 6,
        "errors": [
            {"index": 3, "field": "powerKw", "message": "Expected `float` >= 0.0"},
            {"index": 4, "field": "region", "message": "unknown region 'Atlantis'"},
            {
                "index": 5,
                "field": "timestamp",
                "message": "is older than the maximum age of 604800 s",
            },
            {"index": 6, "field": "timestamp", "message": "is more than 300 s in the future"},
            {"index": 7, "field": "meterId", "message": "is required"},
            {"index": 9, "field": "reading", "message": "Expected `object`, got `str`"},
        ],
    }
    # Exactly the two accepted readings hold a dedupe mark.
    assert dedupe_marks() == {("API-1", ts), ("API-2", ts)}
    # And they are queued (no worker runs here): one task per shard.
    shards = {shard_for(meter, support.settings().shards) for meter in ("API-1", "API-2")}
    assert queue_depths() == {
        name: int(name in {f"readings.{k}" for k in shards})
        for name in ["default", *support.settings().reading_queues]
    }


def test_nothing_valid_answers_422(client, ts):
    status, body = post_batch(
        client, [reading("API-1", REGION, ts, 1.0, powerFactor=1.5), {"meterId": "x"}]
    )
    assert status == 422
    assert body == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": 2,
        "errors": [
            {"index": 0, "field": "powerFactor", "message": "Expected `float` <= 1.0"},
            {"index": 1, "field": "readingId", "message": "is required"},
        ],
    }
    assert sum(queue_depths().values()) == 0


def test_only_duplicates_answers_200(client, ts):
    batch = [reading("API-1", REGION, ts, 1.0), reading("API-2", REGION, ts, 2.0)]
    assert post_batch(client, batch) == (
        202,
        {"accepted": 2, "duplicates": 0, "rejected": 0, "errors": []},
    )
    # Same (meter, instant) with a new readingId and value is still a duplicate.
    again = [reading("API-1", REGION, ts, 5.0), reading("API-2", REGION, ts, 2.0)]
    assert post_batch(client, again) == (
        200,
        {"accepted": 0, "duplicates": 2, "rejected": 0, "errors": []},
    )
    with_bad = [reading("API-1", REGION, ts, 1.0), reading("API-9", REGION, ts, -1)]
    assert post_batch(client, with_bad) == (
        200,
        {
            "accepted": 0,
            "duplicates": 1,
            "rejected": 1,
            "errors": [{"index": 1, "field": "powerKw", "message": "Expected `float` >= 0.0"}],
        },
    )


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/telemetry/batch", b"this is not json", "body must be a JSON array of readings"),
        ("/telemetry/batch", b'{"meterId": "m"}', "body must be a JSON array of readings"),
        ("/telemetry/batch", b"[]", "body must hold between 1 and 1000 readings"),
        ("/telemetry", b"[{}]", "body must be a JSON object holding one reading"),
        ("/telemetry", b"{broken", "body must be a JSON object"),
        # Any nesting depth is a bad body, not a crash.
        ("/telemetry/batch", b"[" * 100_000 + b"]" * 100_000, "body must be a JSON array"),
        ("/telemetry/batch", b'[{"metadata": ' + b"[" * 100_000, "body must be a JSON array"),
        ("/telemetry", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "body must be a JSON object"),
    ],
)
def test_bad_bodies_answer_400(client, clean_state, path, body, message):
    response = client.post(path, data=body, content_type="application/json", headers=key_header())
    assert response.status_code == 400
    answer = response.get_json()
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == "BAD_REQUEST"
    assert answer["error"]["message"].startswith(message)
    assert answer["error"]["details"] is None


def test_more_than_1000_readings_answer_413(client, ts):
    batch = [reading(f"API-{i}", REGION, ts, 1.0) for i in range(1001)]
    status, body = post_batch(client, batch)
    assert status == 413
    assert body == {
        "error": {
            "code": "PAYLOAD_TOO_LARGE",
            "message": "a batch holds at most 1000 readings, got 1001",
            "details": None,
        }
    }
    assert sum(queue_depths().values()) == 0
    # 1000 is allowed.
    status, body = post_batch(client, batch[:1000])
    assert (status, body["accepted"]) == (202, 1000)


def test_body_over_the_size_limit_answers_413(client, clean_state):
    limit = support.settings().max_body_bytes
    body = b"[" + b" " * (limit - 1) + b"]"
    response = client.post(
        "/telemetry/batch", data=body, content_type="application/json", headers=key_header()
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def _post_one(client, one):
    return client.post(
        "/telemetry", data=json.dumps(one), content_type="application/json", headers=key_header()
    )


def test_single_reading(client, ts):
    one = reading("API-1", REGION, ts, 3.3, energy=0.01)
    response = _post_one(client, one)
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    response = _post_one(client, one)
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 0, "duplicates": 1, "rejected": 0, "errors": []}
    bad = dict(one, powerKw=-1)
    response = _post_one(client, bad)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"index": 0, "field": "powerKw", "message": "Expected `float` >= 0.0"}
    ]


def test_the_seed_simulators_payload_with_the_key_in_its_url_is_stored_with_energy(
    client, worker, published
):
    now = now_us()
    moment = now - now % MICRO - 90 * MICRO
    # The seed's documented sample, verbatim but for the time.
    sample = {
        "readingId": "a3f5e7b9-1234-5678-90ab-cdef12345678",
        "meterId": "MTR-00000042",
        "userId": "USR-00000021",
        "timestamp": iso_timestamp(moment / MICRO),
        "powerKw": 5.234,
        "energyKwh": 0.0435,
        "voltage": 235.6,
        "region": "Mumbai-North",
        "seq": 1523,
        "status": "OK",
        "metadata": {"mode": "normal", "baseLoad": 4.5},
    }
    # And what the project's simulator sends for the same instant (same shape as the seed's).
    fleet = build_fleet(6, ["Mumbai-North", "Delhi-South"], random.Random(1))
    generated = generate_readings(
        fleet,
        ["normal", "peak", "outage", "normal", "peak", "normal"],
        seq=7,
        timestamp=iso_timestamp(moment / MICRO),
        interval_s=10.0,
        duplicate_rate=0.0,
        rng=random.Random(2),
    )
    assert {"userId", "seq", "status", "metadata", "energyKwh"} <= set(generated[0])
    # Sent as the seed's simulator sends it: INGESTION_URL carries the key, no header.
    response = client.post(
        f"/api/v1/{ingestion_key()}/telemetry/batch",
        data=json.dumps([sample, *generated]),
        content_type="application/json",
    )
    assert (response.status_code, response.get_json()) == (
        202,
        {"accepted": 7, "duplicates": 0, "rejected": 0, "errors": []},
    )

    wait_processed(worker, runs=len(published.snapshot()), raw_rows=7)
    rows = {
        meter: (reading_id, region, power, energy, voltage, ts)
        for meter, reading_id, region, power, energy, voltage, ts in query(
            "SELECT meter_id, reading_id, region, power_kw, energy_kwh, voltage, ts "
            "FROM raw_readings"
        )
    }
    moment_dt = datetime.fromtimestamp(moment // MICRO, tz=UTC)
    assert rows["MTR-00000042"] == (
        "a3f5e7b9-1234-5678-90ab-cdef12345678",
        "Mumbai-North",
        Decimal("5.234"),
        Decimal("0.0435"),
        Decimal("235.6"),
        moment_dt,
    )
    for item in generated:
        assert rows[item["meterId"]] == (
            item["readingId"],
            item["region"],
            Decimal(repr(item["powerKw"])),
            Decimal(repr(item["energyKwh"])),
            Decimal(repr(item["voltage"])),
            moment_dt,
        )
    # Energy is kept (not 0) wherever the meter drew power.
    assert all(rows[item["meterId"]][3] > 0 for item in generated if item["powerKw"] > 0)


def test_backlog_over_bound_answers_503_with_retry_after(client, ts, monkeypatch):
    batch = [reading("API-1", REGION, ts, 1.0), reading("API-2", REGION, ts, 2.0)]
    key_header()  # the key is created before the monkeypatch
    monkeypatch.setattr(get_ingestor(), "backlog_exceeded", lambda: True)
    response = client.post(
        "/telemetry/batch",
        data=json.dumps(batch),
        content_type="application/json",
        headers=key_header(),
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json() == {
        "error": {
            "code": "SERVICE_UNAVAILABLE",
            "message": "the reading queues are over their backlog bound",
            "details": None,
        }
    }
    assert dedupe_marks() == set()
    monkeypatch.undo()
    assert post_batch(client, batch)[0] == 202


def test_broker_failure_answers_503_and_a_retry_is_accepted(client, ts, monkeypatch):
    batch = [reading(f"API-{i}", REGION, ts, 1.0) for i in range(8)]

    def broken(by_shard, received_at_us):
        raise ConnectionError("broker down")

    monkeypatch.setattr(get_ingestor(), "publish", broken)
    response = client.post(
        "/telemetry/batch",
        data=json.dumps(batch),
        content_type="application/json",
        headers=key_header(),
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json()["error"] == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "the broker did not take the readings: broker down",
        "details": None,
    }
    # The marks of readings that were never queued are gone...
    assert dedupe_marks() == set()
    monkeypatch.undo()
    # ...so the client's retry is accepted, not answered as duplicates.
    assert post_batch(client, batch) == (
        202,
        {"accepted": 8, "duplicates": 0, "rejected": 0, "errors": []},
    )


EVERY_REGION = KeyScope(key_id="test", name="every region")


def _ingestor(publish, marks=None) -> Ingestor:
    settings = support.settings()
    return Ingestor(
        settings=settings,
        known_regions=lambda: frozenset({REGION}),
        directory=get_ingestor().directory,
        marks=marks or RedisDedupeMarks(get_redis(), settings.dedupe_mark_ttl_s),
        publish=publish,
        backlog_exceeded=lambda: False,
    )


def _items(readings):
    return get_codec().decode_batch(json.dumps(readings).encode())


def test_publish_failure_releases_every_mark_and_a_taken_shard_folds_once(ts):
    """The broker took one shard's batch, then failed: the whole request is refused and
    retryable, and the shard's readings, queued twice, are counted once."""
    readings = [reading(f"ING-{i:02d}", REGION, ts, float(i)) for i in range(20)]
    published: list[dict[int, list]] = []

    def takes_one_shard_then_fails(by_shard, received_at_us):
        first = min(by_shard)
        published.append({first: by_shard[first]})
        raise ConnectionError("confirm timeout")

    now = datetime.now(UTC)
    with pytest.raises(IngestionUnavailableError) as excinfo:
        _ingestor(takes_one_shard_then_fails).ingest(_items(readings), EVERY_REGION, now)
    assert excinfo.value.reason == "the broker did not take the readings: confirm timeout"
    assert excinfo.value.retry_after == 2
    assert dedupe_marks() == set()

    retried: list[dict[int, list]] = []
    result = _ingestor(lambda by_shard, _: retried.append(by_shard)).ingest(
        _items(readings), EVERY_REGION, now
    )
    assert (result.accepted, result.duplicates, result.errors) == (20, 0, [])
    [(shard, taken_rows)] = published[0].items()
    first = fold_one(taken_rows, now_us())
    again = fold_one(retried[0][shard], now_us())
    assert (first["owned"], again["owned"]) == (len(taken_rows), 0)
    assert raw_count() == len(taken_rows)


def test_total_publish_failure_then_retry_is_accepted_not_duplicate(ts):
    readings = [reading(f"ING-{i:02d}", REGION, ts, 1.0) for i in range(5)]

    def broken(by_shard, received_at_us):
        raise OSError("connection refused")

    now = datetime.now(UTC)
    with pytest.raises(IngestionUnavailableError):
        _ingestor(broken).ingest(_items(readings), EVERY_REGION, now)
    assert dedupe_marks() == set()
    result = _ingestor(lambda *args: None).ingest(_items(readings), EVERY_REGION, now)
    assert (result.accepted, result.duplicates, result.status) == (5, 0, 202)


def test_redis_unreachable_is_unavailable(ts):
    client = redis.Redis.from_url("redis://localhost:6390/0", socket_connect_timeout=0.5)
    calls = []
    try:
        ingestor = _ingestor(lambda *args: calls.append(args), RedisDedupeMarks(client, 300))
        with pytest.raises(IngestionUnavailableError) as excinfo:
            ingestor.ingest(
                _items([reading("ING-1", REGION, ts, 1.0)]), EVERY_REGION, datetime.now(UTC)
            )
    finally:
        client.close()
    assert excinfo.value.reason.startswith("Redis is unavailable: ")
    assert excinfo.value.retry_after == 2
    assert calls == []


def test_redis_unreachable_answers_503(client, ts, monkeypatch):
    unreachable = redis.Redis.from_url("redis://localhost:6390/0", socket_connect_timeout=0.5)
    try:
        monkeypatch.setattr(get_ingestor(), "marks", RedisDedupeMarks(unreachable, 300))
        status, body = post_batch(client, [reading("API-1", REGION, ts, 1.0)])
    finally:
        unreachable.close()
    assert status == 503
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["error"]["message"].startswith("Redis is unavailable: ")
    assert sum(queue_depths().values()) == 0


def test_backlog_guard_reads_queue_depths(ts):
    for _ in range(3):
        fold_batch.apply_async(args=([], ts), queue="readings.1")
    depths = queue_depths()
    assert depths == {
        "default": 0,
        "readings.0": 0,
        "readings.1": 3,
        "readings.2": 0,
        "readings.3": 0,
    }
    queues = support.settings().reading_queues
    assert BacklogGuard(queues, limit=2, period_s=0)() is True
    assert BacklogGuard(queues, limit=3, period_s=0)() is False
