"""The whole pipeline: HTTP API -> broker -> real worker -> Redis windows -> flush -> PostgreSQL.

A small hand-made data set with exact duplicates (in a batch, across batches, and one whose
Redis mark has expired), zero power, readings out of order, late readings for windows already
flushed, readings with and without voltage and energy, an offset timestamp, a reading on the
last microsecond of a minute, and two regions. Every stored value is checked against numbers
computed by hand below, and against a recomputation from raw_readings.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from segs.redis_client import get_redis
from segs.services.spine.dedupe import mark_of
from tests.support import MICRO
from tests.support import assert_stored_equals_recomputed
from tests.support import dt
from tests.support import flush_now
from tests.support import iso
from tests.support import meter_rows
from tests.support import open_window_count
from tests.support import past_15m_window
from tests.support import post_batch
from tests.support import query
from tests.support import reading
from tests.support import region_rows
from tests.support import shard_of
from tests.support import wait_processed
from tests.support import window_store

pytestmark = pytest.mark.integration

A, CAP_A = "Pune-West", D("3400.000")
B, CAP_B = "Chennai-North", D("3600.000")
A1, A2, B1 = "E2E-A1", "E2E-A2", "E2E-B1"
S = MICRO  # one second


def test_pipeline_end_to_end(client, worker, published):
    # Windows 45-60 minutes ago: closed long before we flush (grace is 1 s).
    W = past_15m_window(45)  # noqa: N806 - the quarter hour, W = M0
    M0, M1, M2, X = W, W + 60 * S, W + 120 * S, W + 900 * S  # noqa: N806

    def post(batch, expected_answer, raw_rows):
        assert post_batch(client, batch) == expected_answer
        wait_processed(worker, runs=len(published.snapshot()), raw_rows=raw_rows)

    # Batch 1.
    post(
        [
            reading(A1, A, M0 + 10 * S, 4.123, energy=0.0344, voltage=230.1),  # r1
            reading(A1, A, M0 + 40 * S, 0, energy=0, voltage=229.9),  # r2: zero power
            reading(A1, A, M0 + 10 * S, 4.123, energy=0.0344, voltage=230.1),  # dup of r1
            reading(A2, A, M1 + 5 * S, 2.5),  # r5: no energy, no voltage
            reading(B1, B, M0 + 20 * S, 7.777, energy=0.0648, voltage=240.0),  # r8
            reading(B1, B, M2, 1.001, voltage=235.5),  # r9: no energy
            reading(B1, B, M2 + 30 * S, -1.0),  # invalid
        ],
        (
            202,
            {
                "accepted": 5,
                "duplicates": 1,
                "rejected": 1,
                "errors": [{"index": 6, "field": "powerKw", "message": "Expected `float` >= 0.0"}],
            },
        ),
        raw_rows=5,
    )
    # Batch 2: earlier timestamps than batch 1 (out of order), a duplicate across batches.
    post(
        [
            reading(A1, A, M0 + 10 * S, 9.9),  # duplicate of r1 with another value
            reading(A2, A, M0 + 30 * S, 3.25, energy=0.027, voltage=231.0),  # r6
            reading(B1, B, M0 + 5 * S, 0.5, energy=0.004, voltage=238.2),  # r10
            reading(A1, A, X, 5.0, energy=0.0417, voltage=230.0),  # r3: next quarter hour
            reading(  # r11, sent at +05:30
                B1, B, M1 + 30 * S, 2.2, voltage=236.0, timestamp=iso(M1 + 30 * S, offset="+05:30")
            ),
        ],
        (202, {"accepted": 4, "duplicates": 1, "rejected": 0, "errors": []}),
        raw_rows=9,
    )

    assert flush_now() == {"windows": 9, "rows": 11, "late_readings": 0, "quarantined": 0}
    first = meter_rows("1m")
    assert first[(A1, dt(M0))][:3] == (A, 2, D("4.123")) and first[(A1, dt(M0))][-1] == 1
    assert first[(B1, dt(M0))][:3] == (B, 2, D("8.277")) and first[(B1, dt(M0))][-1] == 1
    assert meter_rows("15m")[(B1, dt(W))][:3] == (B, 4, D("11.478"))
    assert region_rows("1m")[(A, dt(M0))] == (2, 3, D("5.311500"), CAP_A, D("0.1562"), D("0.0614"))

    # Batch 3: late readings for windows that were flushed, plus a recent duplicate.
    post(
        [
            reading(A1, A, M0 + 50 * S, 6.6, energy=0.055, voltage=232.0),  # r4: late
            reading(B1, B, M0 + 60 * S - 1, 0.25, energy=0.002),  # r12: last µs of M0
            reading(B1, B, M1, 3.0, energy=0.025, voltage=237.0),  # r13: first µs of M1
            reading(A2, A, M2 + 1 * S, 1.5),  # r7: new minute, flushed quarter hour
            reading(A1, A, M0 + 10 * S, 1.0),  # duplicate of r1 (mark still there)
        ],
        (202, {"accepted": 4, "duplicates": 1, "rejected": 0, "errors": []}),
        raw_rows=13,
    )
    # Batch 4: a duplicate whose Redis mark expired: the API takes it, the worker drops it.
    assert get_redis().hdel(*mark_of(shard_of(B1), B1, M0 + 20 * S)) == 1
    post(
        [reading(B1, B, M0 + 20 * S, 99.0, energy=1.0, voltage=250.0)],
        (202, {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}),
        raw_rows=13,
    )
    # The worker archived and folded each of the 13 readings once and dropped the stale one.
    assert worker.metric("segs_readings_archived_total") == 13
    assert worker.metric("segs_readings_duplicate_total", stage="archive") == 1

    assert flush_now() == {"windows": 6, "rows": 7, "late_readings": 7, "quarantined": 0}
    assert flush_now() == {"windows": 0, "rows": 0, "late_readings": 0, "quarantined": 0}

    # raw_readings: the 13 distinct readings, first value of each (meter, instant) kept.
    assert query(
        "SELECT meter_id, ts, region, power_kw, energy_kwh, voltage FROM raw_readings "
        "ORDER BY meter_id, ts"
    ) == [
        (A1, dt(M0 + 10 * S), A, D("4.123"), D("0.0344"), D("230.1")),
        (A1, dt(M0 + 40 * S), A, D("0"), D("0"), D("229.9")),
        (A1, dt(M0 + 50 * S), A, D("6.6"), D("0.055"), D("232.0")),
        (A1, dt(X), A, D("5.0"), D("0.0417"), D("230.0")),
        (A2, dt(M0 + 30 * S), A, D("3.25"), D("0.027"), D("231.0")),
        (A2, dt(M1 + 5 * S), A, D("2.5"), None, None),
        (A2, dt(M2 + 1 * S), A, D("1.5"), None, None),
        (B1, dt(M0 + 5 * S), B, D("0.5"), D("0.004"), D("238.2")),
        (B1, dt(M0 + 20 * S), B, D("7.777"), D("0.0648"), D("240.0")),
        (B1, dt(M0 + 60 * S - 1), B, D("0.25"), D("0.002"), None),
        (B1, dt(M1), B, D("3.0"), D("0.025"), D("237.0")),
        (B1, dt(M1 + 30 * S), B, D("2.2"), None, D("236.0")),
        (B1, dt(M2), B, D("1.001"), None, D("235.5")),
    ]

    # (region, count, power sum, avg, min, max, energy, voltage sum, voltage count, voltage avg,
    #  last reading, flush count)
    a1_quarter = (A, 3, D("10.723"), D("3.574333"), D("0"), D("6.6"), D("0.0894"), D("692.0"), 3,
                  D("230.666667"), dt(M0 + 50 * S), 2)  # fmt: skip
    a1_next = (A, 1, D("5"), D("5"), D("5"), D("5"), D("0.0417"), D("230"), 1, D("230"), dt(X), 1)
    assert meter_rows("1m") == {
        (A1, dt(M0)): a1_quarter,
        (A1, dt(X)): a1_next,
        (A2, dt(M0)): (A, 1, D("3.25"), D("3.25"), D("3.25"), D("3.25"), D("0.027"), D("231"),
                       1, D("231"), dt(M0 + 30 * S), 1),
        (A2, dt(M1)): (A, 1, D("2.5"), D("2.5"), D("2.5"), D("2.5"), D("0"), D("0"), 0, None,
                       dt(M1 + 5 * S), 1),
        (A2, dt(M2)): (A, 1, D("1.5"), D("1.5"), D("1.5"), D("1.5"), D("0"), D("0"), 0, None,
                       dt(M2 + 1 * S), 1),
        (B1, dt(M0)): (B, 3, D("8.527"), D("2.842333"), D("0.25"), D("7.777"), D("0.0708"),
                       D("478.2"), 2, D("239.1"), dt(M0 + 60 * S - 1), 2),
        (B1, dt(M1)): (B, 2, D("5.2"), D("2.6"), D("2.2"), D("3.0"), D("0.025"), D("473.0"), 2,
                       D("236.5"), dt(M1 + 30 * S), 2),
        (B1, dt(M2)): (B, 1, D("1.001"), D("1.001"), D("1.001"), D("1.001"), D("0"), D("235.5"),
                       1, D("235.5"), dt(M2), 1),
    }  # fmt: skip
    assert meter_rows("15m") == {
        (A1, dt(W)): a1_quarter,
        (A1, dt(X)): a1_next,
        (A2, dt(W)): (A, 3, D("7.25"), D("2.416667"), D("1.5"), D("3.25"), D("0.027"), D("231"),
                      1, D("231"), dt(M2 + 1 * S), 2),
        (B1, dt(W)): (B, 6, D("14.728"), D("2.454667"), D("0.25"), D("7.777"), D("0.0958"),
                      D("1186.7"), 5, D("237.34"), dt(M2), 2),
    }  # fmt: skip

    # (meter count, reading count, total power, capacity, load %, energy)
    assert region_rows("1m") == {
        (A, dt(M0)): (2, 4, D("6.824333"), CAP_A, D("0.2007"), D("0.1164")),
        (A, dt(M1)): (1, 1, D("2.5"), CAP_A, D("0.0735"), D("0")),
        (A, dt(M2)): (1, 1, D("1.5"), CAP_A, D("0.0441"), D("0")),
        (A, dt(X)): (1, 1, D("5"), CAP_A, D("0.1471"), D("0.0417")),
        (B, dt(M0)): (1, 3, D("2.842333"), CAP_B, D("0.0790"), D("0.0708")),
        (B, dt(M1)): (1, 2, D("2.6"), CAP_B, D("0.0722"), D("0.025")),
        (B, dt(M2)): (1, 1, D("1.001"), CAP_B, D("0.0278"), D("0")),
    }
    assert region_rows("15m") == {
        (A, dt(W)): (2, 6, D("5.991000"), CAP_A, D("0.1762"), D("0.1164")),
        (A, dt(X)): (1, 1, D("5"), CAP_A, D("0.1471"), D("0.0417")),
        (B, dt(W)): (1, 6, D("2.454667"), CAP_B, D("0.0682"), D("0.0958")),
    }

    assert_stored_equals_recomputed()

    # Meter registry: region, first sight (the earliest reading of the first batch that carried
    # the meter), and last_seen = newest reading once the 1-minute windows are flushed.
    assert query("SELECT meter_id, region, first_seen, last_seen FROM meters ORDER BY 1") == [
        (A1, A, dt(M0 + 10 * S), dt(X)),
        (A2, A, dt(M1 + 5 * S), dt(M2 + 1 * S)),
        (B1, B, dt(M0 + 20 * S), dt(M2)),
    ]
    # Nothing is left open or half-flushed in Redis.
    assert open_window_count() == 0
    assert window_store().flushing("1m") == window_store().flushing("15m") == {}
