"""Unit tests of the load generator: meter model, batching, scheduling, retries, HTTP client, CLI.

No network: the HTTP client talks to servers the tests start on the loopback interface.
"""

import asyncio
import os
import random
import socket
import sys
import types
import uuid
from datetime import UTC
from datetime import datetime

import orjson
import pytest

from segs.domain import alerts as rules
from simulator.cli import build_parser
from simulator.cli import settings_from
from simulator.meters import NORMAL
from simulator.meters import OUTAGE
from simulator.meters import OVERLOAD
from simulator.meters import PEAK
from simulator.meters import PROFILES
from simulator.meters import REGIONS
from simulator.meters import CycleEncoder
from simulator.meters import Scenario
from simulator.meters import build_fleet
from simulator.meters import generate_readings
from simulator.meters import iso_timestamp
from simulator.runner import Settings
from simulator.runner import Stats
from simulator.runner import percentile
from simulator.runner import scheduled_start
from simulator.runner import simulate
from simulator.senders import Answer
from simulator.senders import HttpTransport
from simulator.senders import Outcome
from simulator.senders import Reply
from simulator.senders import SendError
from simulator.senders import is_retryable
from simulator.senders import open_transport
from simulator.senders import parse_answer
from simulator.senders import retry_delay
from simulator.senders import send_with_retries
from simulator.senders import tally

TS = "2026-11-22T10:00:00.000Z"


def cycle(fleet, profiles, *, seed=1, interval_s=10.0, duplicate_rate=0.0, seq=1, timestamp=TS):
    return generate_readings(
        fleet,
        profiles,
        seq=seq,
        timestamp=timestamp,
        interval_s=interval_s,
        duplicate_rate=duplicate_rate,
        rng=random.Random(seed),
    )


def first_cycle_payload(seed):
    rng = random.Random(seed)
    fleet = build_fleet(50, REGIONS, rng)
    readings = generate_readings(
        fleet,
        ["normal"] * 50,
        seq=1,
        timestamp=TS,
        interval_s=10.0,
        duplicate_rate=0.01,
        rng=rng,
    )
    return orjson.dumps(readings)


# --- fleet ----------------------------------------------------------------------------------


def test_meter_ids_users_and_regions_are_round_robin():
    fleet = build_fleet(25, REGIONS, random.Random(1))

    assert len(fleet) == 25
    assert fleet.meter_ids[:3] == ["MTR-00000001", "MTR-00000002", "MTR-00000003"]
    assert fleet.user_ids[:5] == [
        "USR-00000001",
        "USR-00000001",
        "USR-00000002",
        "USR-00000002",
        "USR-00000003",
    ]
    assert fleet.regions[:11] == [*REGIONS, "Mumbai-North"]
    assert (fleet.meter_ids[24], fleet.user_ids[24], fleet.regions[24]) == (
        "MTR-00000025",
        "USR-00000013",
        "Bangalore-East",
    )


def test_custom_regions_are_assigned_in_turn():
    fleet = build_fleet(5, ["A", "B"], random.Random(1))

    assert fleet.regions == ["A", "B", "A", "B", "A"]


def test_base_loads_are_in_range_with_two_decimals_drawn_from_the_seed():
    fleet = build_fleet(10_000, REGIONS, random.Random(7))

    assert all(1.0 <= base <= 8.0 for base in fleet.base_loads_kw)
    assert all(round(base, 2) == base for base in fleet.base_loads_kw)
    assert fleet.base_loads_kw[0] == round(random.Random(7).uniform(1.0, 8.0), 2)
    reading = cycle(fleet, [PEAK] * 10_000)[0]
    assert reading["metadata"] == {"mode": "peak", "baseLoad": fleet.base_loads_kw[0]}


# --- readings -------------------------------------------------------------------------------


def test_reading_has_the_seed_shape_with_cycle_fields():
    fleet = build_fleet(3, REGIONS, random.Random(1))

    reading = cycle(fleet, ["normal"] * 3, seq=4)[1]

    assert list(reading) == [
        "readingId",
        "meterId",
        "userId",
        "timestamp",
        "powerKw",
        "energyKwh",
        "voltage",
        "region",
        "seq",
        "status",
        "metadata",
    ]
    assert reading["meterId"] == "MTR-00000002"
    assert reading["userId"] == "USR-00000001"
    assert reading["region"] == "Mumbai-South"
    assert reading["timestamp"] == TS
    assert reading["seq"] == 4
    assert reading["status"] == "OK"
    assert reading["metadata"] == {"mode": "normal", "baseLoad": fleet.base_loads_kw[1]}
    assert uuid.UUID(reading["readingId"]).version == 4
    assert 220.0 <= reading["voltage"] <= 240.0
    assert round(reading["voltage"], 1) == reading["voltage"]


def test_same_seed_gives_identical_first_cycle_payload():
    assert first_cycle_payload(42) == first_cycle_payload(42)


def test_different_seeds_give_different_payloads():
    assert first_cycle_payload(42) != first_cycle_payload(43)


def reference_readings(fleet, profiles, *, seq, timestamp, interval_s, duplicate_rate, rng):
    """The readings as the simulator first built them, a dict per reading; CycleEncoder must
    send exactly these, in this order and key order, from the same draws."""
    readings = []
    meters = zip(
        fleet.meter_ids, fleet.user_ids, fleet.regions, fleet.base_loads_kw, profiles, strict=True
    )
    for meter_id, user_id, region, base, profile in meters:
        status = "OK"
        if profile == NORMAL:
            power = base * (0.8 + 0.4 * rng.random())
        elif profile == PEAK:
            power = base * (1.5 + 0.5 * rng.random())
        elif profile == OVERLOAD:
            power = base * (1.9 + 0.4 * rng.random())
        else:
            power = base * (0.3 * rng.random()) if rng.random() < 0.3 else 0.0
            if rng.random() < 0.1:
                status = "ERROR"
        power = round(power, 3)
        reading = {
            "readingId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "meterId": meter_id,
            "userId": user_id,
            "timestamp": timestamp,
            "powerKw": power,
            "energyKwh": round(power * interval_s / 3600, 4),
            "voltage": round(220 + 20 * rng.random(), 1),
            "region": region,
            "seq": seq,
            "status": status,
            "metadata": {"mode": profile, "baseLoad": base},
        }
        readings.append(reading)
        if duplicate_rate and rng.random() < duplicate_rate:
            readings.append(dict(reading))
    return readings


@pytest.mark.parametrize(
    ("meters", "mix", "interval_s", "duplicate_rate", "batch_size", "regions"),
    [
        (1234, [NORMAL], 10.0, 0.01, 500, REGIONS),
        (1000, [PEAK, OVERLOAD], 2.0, 0.0, 1000, REGIONS),
        (777, PROFILES, 7.3, 0.5, 100, ("A", "B")),
        (600, [OUTAGE], 3600.0, 1.0, 7, ('Ré"gi\\on', "Zürich\n")),
        (3, PROFILES, 0.01, 0.3, 1, REGIONS),
    ],
)
def test_bodies_are_byte_for_byte_the_reference_readings_batched(
    meters, mix, interval_s, duplicate_rate, batch_size, regions
):
    fleet = build_fleet(meters, regions, random.Random(meters))
    profiles = [mix[i % len(mix)] for i in range(meters)]
    encoder = CycleEncoder(
        fleet, interval_s=interval_s, duplicate_rate=duplicate_rate, batch_size=batch_size
    )
    ours, theirs = random.Random(5), random.Random(5)

    for seq in (1, 2):
        batches = list(encoder.batches(profiles, seq=seq, timestamp=TS, rng=ours))
        expected = reference_readings(
            fleet,
            profiles,
            seq=seq,
            timestamp=TS,
            interval_s=interval_s,
            duplicate_rate=duplicate_rate,
            rng=theirs,
        )

        assert [body for body, _ in batches] == [
            orjson.dumps(expected[i : i + batch_size]) for i in range(0, len(expected), batch_size)
        ]
        assert [count for _, count in batches] == [
            len(expected[i : i + batch_size]) for i in range(0, len(expected), batch_size)
        ]
        assert ours.getstate() == theirs.getstate()


def test_iso_timestamp_is_utc_with_milliseconds_and_z():
    moment = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()

    assert iso_timestamp(moment) == "2026-11-22T10:00:00.000Z"
    assert iso_timestamp(moment + 0.25) == "2026-11-22T10:00:00.250Z"
    assert iso_timestamp(moment + 0.0126) == "2026-11-22T10:00:00.013Z"
    assert iso_timestamp(moment + 0.3 - 1e-9) == "2026-11-22T10:00:00.300Z"


@pytest.mark.parametrize(
    ("mode", "low", "high"),
    [("normal", 0.8, 1.2), ("peak", 1.5, 2.0), (OVERLOAD, 1.9, 2.3)],
)
def test_power_stays_within_the_mode_multiplier(mode, low, high):
    fleet = build_fleet(2000, REGIONS, random.Random(5))

    readings = cycle(fleet, [mode] * 2000)

    for base, reading in zip(fleet.base_loads_kw, readings, strict=True):
        # powerKw is rounded to 3 decimals, hence the half-unit allowance.
        assert base * low - 0.0005 <= reading["powerKw"]
        assert reading["powerKw"] <= base * high + 0.0005
        assert round(reading["powerKw"], 3) == reading["powerKw"]
        assert reading["status"] == "OK"


def test_outage_power_is_zero_or_at_most_thirty_percent_of_base():
    fleet = build_fleet(2000, REGIONS, random.Random(5))

    readings = cycle(fleet, [OUTAGE] * 2000)

    for base, reading in zip(fleet.base_loads_kw, readings, strict=True):
        assert reading["powerKw"] == 0.0 or reading["powerKw"] <= base * 0.3 + 0.0005
    zeros = sum(r["powerKw"] == 0.0 for r in readings)
    errors = sum(r["status"] == "ERROR" for r in readings)
    assert {r["status"] for r in readings} == {"OK", "ERROR"}
    assert 1200 < zeros < 1600  # about 70 in 100
    assert 100 < errors < 300  # about 1 in 10


@pytest.mark.parametrize("interval_s", [10.0, 7.5, 1.0])
def test_energy_is_power_times_interval_in_hours_rounded_to_four_decimals(interval_s):
    fleet = build_fleet(500, REGIONS, random.Random(9))

    for reading in cycle(fleet, ["normal"] * 500, interval_s=interval_s):
        assert reading["energyKwh"] == round(reading["powerKw"] * interval_s / 3600, 4)


def test_duplicate_rate_one_follows_every_reading_with_an_exact_copy():
    fleet = build_fleet(100, REGIONS, random.Random(1))

    readings = cycle(fleet, ["normal"] * 100, duplicate_rate=1.0)

    assert len(readings) == 200
    for original, copy in zip(readings[::2], readings[1::2], strict=True):
        assert copy == original
    assert len({r["readingId"] for r in readings}) == 100


def test_duplicate_rate_zero_sends_each_reading_once():
    fleet = build_fleet(100, REGIONS, random.Random(1))

    readings = cycle(fleet, ["normal"] * 100, duplicate_rate=0.0)

    assert [r["meterId"] for r in readings] == fleet.meter_ids
    assert len({r["readingId"] for r in readings}) == 100


def test_batches_cut_one_whole_generation_in_order():
    fleet = build_fleet(1234, REGIONS, random.Random(1))
    profiles = ["normal"] * 1234
    encoder = CycleEncoder(fleet, interval_s=10.0, duplicate_rate=0.05, batch_size=500)

    whole = cycle(fleet, profiles, duplicate_rate=0.05)
    batches = list(encoder.batches(profiles, seq=1, timestamp=TS, rng=random.Random(1)))

    assert [r for body, _ in batches for r in orjson.loads(body)] == whole
    assert [count for _, count in batches][:2] == [500, 500]
    assert sum(count for _, count in batches) == len(whole) > 1234


# --- batching and scenarios -----------------------------------------------------------------


def test_batches_of_1234_readings_are_500_500_234_in_order():
    fleet = build_fleet(1234, REGIONS, random.Random(1))
    encoder = CycleEncoder(fleet, interval_s=10.0, duplicate_rate=0.0, batch_size=500)

    batches = list(encoder.batches(["normal"] * 1234, seq=1, timestamp=TS, rng=random.Random(1)))

    assert [count for _, count in batches] == [500, 500, 234]
    assert [len(orjson.loads(body)) for body, _ in batches] == [500, 500, 234]
    assert [r["meterId"] for body, _ in batches for r in orjson.loads(body)] == fleet.meter_ids


def test_overload_scenario_multiplies_only_the_chosen_region():
    fleet = build_fleet(100, REGIONS, random.Random(2))
    scenario = Scenario(fleet, name="overload", mode="normal", region="Pune-West", ramp_s=0)

    profiles = scenario.profiles(0.0)
    readings = cycle(fleet, profiles)

    assert [i for i, p in enumerate(profiles) if p == OVERLOAD] == list(range(7, 100, 10))
    assert {p for r, p in zip(fleet.regions, profiles, strict=True) if r != "Pune-West"} == {
        "normal"
    }
    meters = zip(fleet.regions, fleet.base_loads_kw, readings, strict=True)
    for region, base, reading in meters:
        low, high = (1.9, 2.3) if region == "Pune-West" else (0.8, 1.2)
        assert base * low - 0.0005 <= reading["powerKw"]
        assert reading["powerKw"] <= base * high + 0.0005
    assert readings[7]["metadata"]["mode"] == OVERLOAD


def _spikes_and_drops(ramp_s: float) -> tuple[int, int]:
    """Meters of the overloaded region raising a power spike or drop under SEGS's detection
    rule: 10 minutes of normal load (their baselines learned), then 10 of the scenario."""
    fleet = build_fleet(200, REGIONS, random.Random(3))
    scenario = Scenario(fleet, name="overload", mode="normal", region="Pune-West", ramp_s=ramp_s)
    in_region = [i for i, region in enumerate(fleet.regions) if region == "Pune-West"]
    states: dict[int, rules.MeterState | None] = dict.fromkeys(in_region)
    raised: dict[str, set[int]] = {rules.POWER_SPIKE: set(), rules.POWER_DROP: set()}
    rng = random.Random(4)
    start_s = 1_800_000_000.0
    for index in range(120):  # a cycle every 10 s
        epoch_s = start_s + 10 * index
        profiles = ["normal"] * len(fleet) if index < 60 else scenario.profiles(epoch_s)
        readings = generate_readings(
            fleet, profiles, seq=index, timestamp=TS, interval_s=10, duplicate_rate=0, rng=rng
        )
        for i in in_region:
            power = round(readings[i]["powerKw"] * 1_000_000)
            states[i], findings = rules.observe(states[i], int(epoch_s * 1_000_000), power)
            for finding in findings:
                if isinstance(finding, rules.Raise) and finding.type in raised:
                    raised[finding.type].add(i)
    assert all(profile == OVERLOAD for profile in (profiles[i] for i in in_region))
    return len(raised[rules.POWER_SPIKE]), len(raised[rules.POWER_DROP])


def test_the_overload_ramp_lets_learned_baselines_follow_without_a_spike():
    assert _spikes_and_drops(ramp_s=180) == (0, 0)
    # Jumping to the full load at once: most of the region's meters spike.
    spikes, drops = _spikes_and_drops(ramp_s=0)
    assert spikes > 10 and drops == 0


def test_the_overload_ramp_climbs_in_steps_from_the_first_cycle():
    fleet = build_fleet(10, ["Pune-West"], random.Random(2))
    scenario = Scenario(fleet, name="overload", mode="normal", region="Pune-West", ramp_s=180)
    lows = []
    for second in range(0, 240, 30):
        readings = cycle(fleet, scenario.profiles(1000.0 + second), seed=second)
        lows.append(
            min(r["powerKw"] / base for r, base in zip(readings, fleet.base_loads_kw, strict=True))
        )
    # Each 30 s step draws at least 1.1/6 more of the base load; from 180 s on, the full 1.9.
    assert lows[:6] == sorted(lows[:6])
    assert lows[0] >= 0.8 + 1.1 / 6 - 0.001 and lows[-1] >= 1.9 - 0.001
    assert lows[-2] >= 1.9 - 0.001


def test_outage_scenario_cuts_only_the_chosen_region():
    fleet = build_fleet(20, REGIONS, random.Random(2))

    profiles = Scenario(fleet, name="outage", mode="peak", region="Delhi-North").profiles(0.0)

    assert profiles == ["peak"] * 2 + [OUTAGE] + ["peak"] * 9 + [OUTAGE] + ["peak"] * 7


def test_flap_scenario_overloads_even_minutes_only():
    fleet = build_fleet(10, REGIONS, random.Random(2))
    scenario = Scenario(fleet, name="flap", mode="normal", region="Pune-West")
    even_minute = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()

    assert scenario.profiles(even_minute)[7] == OVERLOAD
    assert scenario.profiles(even_minute + 59.9)[7] == OVERLOAD
    assert scenario.profiles(even_minute + 60) == ["normal"] * 10
    assert scenario.profiles(even_minute + 120)[7] == OVERLOAD


def test_steady_scenario_uses_the_mode_everywhere():
    fleet = build_fleet(10, REGIONS, random.Random(2))

    assert (
        Scenario(fleet, name="steady", mode="peak", region="Pune-West").profiles(0.0)
        == ["peak"] * 10
    )


# --- scheduling and statistics --------------------------------------------------------------


def test_fixed_rate_schedule_depends_only_on_t0_cycle_and_interval():
    assert scheduled_start(100.0, 0, 10.0) == 100.0
    assert scheduled_start(100.0, 3, 10.0) == 130.0
    assert scheduled_start(5.0, 1000, 0.5) == 505.0


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]

    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 99) == 0.0


def test_stats_count_answered_and_failed_batches():
    stats = Stats()

    stats.record(
        Outcome(
            final=Reply(202, {"accepted": 498, "duplicates": 1, "rejected": 1}),
            statuses=[503, 202],
            latencies_s=[0.002, 0.004],
        ),
        500,
    )
    stats.record(Outcome(transport_errors=3, error="connection refused"), 234)

    assert (stats.sent, stats.failed, stats.batches) == (500, 234, 2)
    assert (stats.accepted, stats.duplicates, stats.rejected) == (498, 1, 1)
    assert stats.statuses == {503: 1, 202: 1}
    assert stats.transport_errors == 3
    assert stats.last_error == "connection refused"
    assert stats.latency_ms(50, 100) == [2.0, 4.0]


# --- retries --------------------------------------------------------------------------------


def test_retry_backoff_doubles_and_503_retry_after_wins():
    assert retry_delay(1, 1.0, None) == 1.0
    assert retry_delay(2, 1.0, None) == 2.0
    assert retry_delay(1, 1.0, Reply(503, {}, retry_after_s=7.0)) == 7.0
    assert retry_delay(2, 1.0, Reply(503, {})) == 2.0
    assert retry_delay(1, 1.0, Reply(500, {}, retry_after_s=7.0)) == 1.0


def test_only_429_and_5xx_are_retried():
    assert [s for s in (200, 202, 400, 413, 422, 429, 500, 503) if is_retryable(s)] == [
        429,
        500,
        503,
    ]


def test_tally_reads_counts_from_the_answer_body():
    body = {"accepted": 3, "duplicates": 1, "rejected": 1, "errors": []}

    assert tally(Reply(202, body), 5) == (3, 1, 1)
    assert tally(Reply(200, {"accepted": 0, "duplicates": 5, "rejected": 0}), 5) == (0, 5, 0)
    assert tally(Reply(422, {"accepted": 0, "duplicates": 0, "rejected": 5}), 5) == (0, 0, 5)
    assert tally(Reply(413, {"error": "too large"}), 5) == (0, 0, 5)
    assert tally(Reply(202, {}), 5) == (5, 0, 0)


class ScriptedTransport:
    """Answers each post with the next scripted Reply, or raises it if it is an exception."""

    target = "scripted"

    def __init__(self, *script):
        self.script = list(script)
        self.bodies = []

    async def post(self, body):
        self.bodies.append(body)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self):
        pass


def test_send_retries_after_no_answer_and_503_then_succeeds():
    transport = ScriptedTransport(
        SendError("connection refused"),
        Reply(503, {}, retry_after_s=0.0),
        Reply(202, {"accepted": 2, "duplicates": 0, "rejected": 0}),
    )

    outcome = asyncio.run(send_with_retries(transport, b"[]", attempts=3, base_delay_s=0.0))

    assert outcome.final == Reply(202, {"accepted": 2, "duplicates": 0, "rejected": 0})
    assert outcome.statuses == [503, 202]
    assert outcome.transport_errors == 1
    assert len(transport.bodies) == 3


def test_send_does_not_retry_a_client_error():
    transport = ScriptedTransport(Reply(400, {}), Reply(202, {}))

    outcome = asyncio.run(send_with_retries(transport, b"[]", attempts=3, base_delay_s=0.0))

    assert outcome.final == Reply(400, {})
    assert len(transport.bodies) == 1


def test_send_gives_up_after_the_last_attempt():
    transport = ScriptedTransport(Reply(503, {}), Reply(503, {}), Reply(503, {}))

    outcome = asyncio.run(send_with_retries(transport, b"[]", attempts=3, base_delay_s=0.0))

    assert outcome.final is None
    assert (outcome.error, outcome.error_status) == ("HTTP 503", 503)


def test_simulate_sends_every_cycle_in_batches_with_the_cycle_timestamp():
    answers = [Reply(202, {"accepted": n, "duplicates": 0, "rejected": 0}) for n in (500, 500, 200)]
    transport = ScriptedTransport(*answers * 3)
    settings = Settings(
        meters=1200,
        interval_s=0.01,
        regions=REGIONS,
        duplicate_rate=0.0,
        seed=1,
        iterations=3,
        batch_size=500,
        quiet=True,
    )

    stats = asyncio.run(simulate(settings, transport))

    batches = [orjson.loads(body) for body in transport.bodies]
    assert [len(b) for b in batches] == [500, 500, 200] * 3
    assert (stats.cycles, stats.generated, stats.sent, stats.accepted) == (3, 3600, 3600, 3600)
    assert [b[0]["seq"] for b in batches] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    stamps = [datetime.fromisoformat(b[0]["timestamp"]) for b in batches[::3]]
    assert len({b[0]["timestamp"] for b in batches[:3]}) == 1
    assert [round((later - stamps[0]).total_seconds(), 2) for later in stamps] == [0.0, 0.01, 0.02]


class TimedTransport(ScriptedTransport):
    """Also notes when each batch was posted (event loop time)."""

    def __init__(self, *script):
        super().__init__(*script)
        self.times = []

    async def post(self, body):
        self.times.append(asyncio.get_running_loop().time())
        return await super().post(body)


@pytest.mark.parametrize(("spread", "first_to_last"), [(False, (0.0, 0.1)), (True, (0.6, 0.9))])
def test_spread_sends_a_cycles_batches_over_the_interval(spread, first_to_last):
    # 4 batches in a 1 s interval: 0.9 s / 4 = 0.225 s apart with --spread, else all at once.
    transport = TimedTransport(*[Reply(202, {"accepted": 250}) for _ in range(4)])
    settings = Settings(
        meters=1000,
        interval_s=1.0,
        duplicate_rate=0.0,
        seed=1,
        iterations=1,
        batch_size=250,
        spread=spread,
        quiet=True,
    )

    stats = asyncio.run(simulate(settings, transport))

    assert (stats.sent, stats.behind_schedule) == (1000, 0)
    low, high = first_to_last
    assert low <= transport.times[-1] - transport.times[0] < high


def test_queue_target_submits_the_batches_in_process(monkeypatch):
    submitted = []

    def submit_batch(body, key):
        assert key == "segs_the-key"
        submitted.append(orjson.loads(body))
        return 202, {"accepted": len(submitted[-1]), "duplicates": 0, "rejected": 0}

    monkeypatch.setitem(
        sys.modules, "segs.ingestion_client", types.SimpleNamespace(submit_batch=submit_batch)
    )
    settings = Settings(
        meters=700, interval_s=0.01, iterations=2, seed=3, quiet=True, target="queue"
    )
    transport = open_transport(
        "queue", url=settings.url, key="segs_the-key", concurrency=2, timeout_s=1.0
    )

    stats = asyncio.run(simulate(settings, transport))

    assert stats.accepted == stats.sent == stats.generated == sum(map(len, submitted)) >= 1400
    assert sorted(map(len, submitted))[2:] == [500, 500]
    assert sorted(batch[0]["seq"] for batch in submitted) == [1, 1, 2, 2]


# --- HTTP client ----------------------------------------------------------------------------


def test_parse_answer_waits_for_the_whole_body():
    head = b"HTTP/1.1 202 Accepted\r\nContent-Length: 14\r\nRetry-After: 3\r\n\r\n"

    assert parse_answer(head[:20], eof=False) is None
    assert parse_answer(head + b'{"accepted"', eof=False) is None
    assert parse_answer(head + b'{"accepted":1}', eof=False) == Answer(
        202, b'{"accepted":1}', "3", keep_alive=True
    )


def test_parse_answer_reads_chunks_close_delimited_bodies_and_interim_answers():
    chunked = (
        b'HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3;x=1\r\n:1}\r\n'
    )

    assert parse_answer(chunked, eof=False) is None
    assert parse_answer(chunked + b"0\r\n\r\n", eof=False) == Answer(503, b'{"a":1}', None, True)
    unsized = b"HTTP/1.0 200 OK\r\n\r\n{}"
    assert parse_answer(unsized, eof=False) is None
    assert parse_answer(unsized, eof=True) == Answer(200, b"{}", None, keep_alive=False)
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    assert parse_answer(interim, eof=False) == Answer(204, b"", None, keep_alive=False)


@pytest.mark.parametrize(
    ("data", "eof"),
    [
        (b"SMTP ready\r\n\r\n", False),
        (b"HTTP/1.1 2xx Odd\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", True),
        (b"HTTP/1.1 200 OK\r\nContent-", True),
    ],
)
def test_parse_answer_refuses_what_is_not_a_whole_http_answer(data, eof):
    with pytest.raises(ValueError):
        parse_answer(data, eof=eof)


async def serve(answer, connections, handlers):
    """A loopback HTTP server: each request gets answer(request head, body) written back."""

    async def handle(reader, writer):
        handlers.append(asyncio.current_task())
        connections.append([])
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                connections[-1].append((head, body))
                reply = answer(head, body)
                if reply is None:
                    await asyncio.sleep(3600)
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/telemetry/batch?x=1"


def accepted(head, body):
    answer = b'{"accepted": %d, "duplicates": 0, "rejected": 0, "errors": []}' % body.count(b"{")
    return b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)


def run_posts(answer, bodies, *, timeout_s=5.0, key=None):
    """Post *bodies* one after the other; return the replies (or SendErrors) and connections."""

    async def main():
        connections, handlers = [], []
        server, url = await serve(answer, connections, handlers)
        transport = HttpTransport(url, concurrency=2, timeout_s=timeout_s, key=key)
        replies = []
        for body in bodies:
            try:
                replies.append(await transport.post(body))
            except SendError as exc:
                replies.append(exc)
        await transport.aclose()
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0.01)  # let the closed transports release their sockets
        return replies, connections

    return asyncio.run(main())


def test_http_posts_json_bodies_over_one_kept_alive_connection():
    bodies = [b'[{"a":1}]', b'[{"a":1},{"b":2}]', b"[]"]

    replies, connections = run_posts(accepted, bodies)

    assert replies == [
        Reply(202, {"accepted": n, "duplicates": 0, "rejected": 0, "errors": []}) for n in (1, 2, 0)
    ]
    assert len(connections) == 1
    assert [body for _, body in connections[0]] == bodies
    head = connections[0][0][0].decode()
    assert head.startswith("POST /telemetry/batch?x=1 HTTP/1.1\r\n")
    assert "\r\nContent-Type: application/json\r\n" in head
    assert "\r\nContent-Length: 9\r\n" in head
    assert "\r\nHost: 127.0.0.1:" in head
    assert "Authorization" not in head


def test_http_sends_the_ingestion_key_as_a_bearer_token():
    _, connections = run_posts(accepted, [b"[]"], key="segs_k")

    head = connections[0][0][0].decode()
    assert "\r\nAuthorization: Bearer segs_k\r\n" in head


def test_http_opens_a_new_connection_after_the_server_closes_one():
    def closing(head, body):
        return b"HTTP/1.1 202 ACCEPTED\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"

    replies, connections = run_posts(closing, [b"[]", b"[]", b"[]"])

    assert replies == [Reply(202, {})] * 3
    assert [len(requests) for requests in connections] == [1, 1, 1]


def test_http_reads_retry_after_from_a_chunked_503():
    def busy(head, body):
        return (
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n9\r\n{"error":\r\n4\r\nnull\r\n1\r\n}\r\n0\r\n\r\n'
        )

    replies, _ = run_posts(busy, [b"[]"])

    assert replies == [Reply(503, {"error": None}, retry_after_s=2.0)]


def test_http_without_an_answer_raises_send_error_and_recovers():
    calls = []

    def silent_once(head, body):
        calls.append(body)
        return None if len(calls) == 1 else accepted(head, body)

    replies, connections = run_posts(silent_once, [b"[]", b"[{}]"], timeout_s=0.2)

    assert isinstance(replies[0], SendError)
    assert str(replies[0]) == "timed out waiting for the answer"
    assert replies[1] == Reply(202, {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []})
    assert len(connections) == 2


def test_http_to_a_closed_port_is_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}/", concurrency=1, timeout_s=5.0)

    with pytest.raises(SendError, match="^connection refused$"):
        asyncio.run(transport.post(b"[]"))


# --- command line ---------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    """No SIM_* variable from the calling shell leaks into a CLI test."""
    for name in [n for n in os.environ if n.startswith("SIM_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def parse(argv):
    parser = build_parser()
    return settings_from(parser.parse_args(argv), parser)


def test_defaults_match_the_seed_simulator(clean_env):
    settings = parse([])

    assert (settings.meters, settings.interval_s, settings.mode) == (5000, 10.0, "normal")
    assert (settings.batch_size, settings.concurrency, settings.retries) == (500, 10, 3)
    assert (settings.duplicate_rate, settings.retry_delay_s) == (0.01, 1.0)
    assert settings.regions == REGIONS
    assert settings.url == "http://localhost:8000/telemetry/batch"
    assert settings.key is None
    assert (settings.quiet, settings.spread) == (False, False)


def test_the_key_comes_from_sim_key_and_the_queue_target_needs_one(clean_env, capsys):
    clean_env.setenv("SIM_KEY", "segs_from-env")
    assert parse([]).key == "segs_from-env"
    assert parse(["--key", "segs_flag"]).key == "segs_flag"
    clean_env.delenv("SIM_KEY")
    with pytest.raises(SystemExit) as exit_info:
        parse(["--target", "queue"])
    assert exit_info.value.code == 2
    assert "--target queue needs --key" in capsys.readouterr().err


def test_environment_sets_defaults_and_the_command_line_wins(clean_env):
    clean_env.setenv("SIM_METERS", "7")
    clean_env.setenv("SIM_REGIONS", "A, B")
    clean_env.setenv("SIM_QUIET", "yes")
    clean_env.setenv("SIM_SPREAD", "on")

    assert parse([]).meters == 7
    assert parse([]).regions == ("A", "B")
    assert (parse([]).quiet, parse([]).spread) == (True, True)
    assert parse(["--meters", "9"]).meters == 9


@pytest.mark.parametrize(
    "argv",
    [
        ["--meters", "0"],
        ["--interval", "0"],
        ["--duplicate-rate", "1.5"],
        ["--duplicate-rate", "-0.1"],
        ["--batch-size", "0"],
        ["--batch-size", "1001"],
        ["--concurrency", "0"],
        ["--regions", ""],
        ["--regions", "A,,B"],
        ["--mode", "party"],
        ["--scenario", "overload", "--regions", "A,B"],
    ],
)
def test_invalid_options_are_argparse_errors(argv, capsys, clean_env):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)

    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_invalid_environment_value_is_an_argparse_error(clean_env, capsys):
    clean_env.setenv("SIM_METERS", "-3")

    with pytest.raises(SystemExit):
        parse([])

    assert "--meters" in capsys.readouterr().err
