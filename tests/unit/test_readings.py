"""Decoding, quantising and checking readings (segs.domain.readings)."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime

import msgspec
import pytest

from segs.domain.identifiers import ID_RULE
from segs.domain.readings import HARD_MAX_QUANTITY
from segs.domain.readings import MICRO
from segs.domain.readings import BatchTooLargeError
from segs.domain.readings import BodyShapeError
from segs.domain.readings import ReadingCodec
from segs.domain.readings import ReadingError
from segs.domain.readings import ReadingLimits
from segs.domain.readings import TimeBounds
from segs.domain.readings import check_row
from segs.domain.readings import from_epoch_us
from segs.domain.readings import micro
from segs.domain.readings import single_as_batch
from segs.domain.readings import split_batch
from segs.domain.readings import to_epoch_us
from segs.domain.readings import to_row

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NOW_US = 1_767_268_800 * MICRO

GOOD = {
    "readingId": "a3f5e7b9-1234-5678-90ab-cdef12345678",
    "meterId": "MTR-00000042",
    "region": "Mumbai-North",
    "timestamp": "2026-01-01T11:59:00.000Z",
    "powerKw": 5.234,
}


CODEC = ReadingCodec(ReadingLimits(), max_items=10)


def decode(*items):
    raw = [msgspec.Raw(json.dumps(item).encode()) for item in items]
    return CODEC.decode_items(raw)


def only_error(item):
    valid, errors = decode(item)
    assert valid == []
    assert len(errors) == 1
    return errors[0]


def test_now_constant():
    assert to_epoch_us(NOW) == NOW_US


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4.123, 4_123_000),
        (0.1 + 0.2, 300_000),
        (0.0, 0),
        (230.1, 230_100_000),
        (0.0435, 43_500),
        (2.675, 2_675_000),
        (0.000001, 1),
        (0.0000005, 1),  # half away from zero
        (0.00000049, 0),
        (999_999.999999, 999_999_999_999),
        (1_000_000.0, 1_000_000_000_000),
        (-1.5, -1_500_000),
    ],
)
def test_micro_quantises_exactly(value, expected):
    assert micro(value) == expected


def test_epoch_microseconds_roundtrip():
    moment = datetime(2026, 11, 22, 10, 0, 59, 999_999, tzinfo=UTC)
    assert to_epoch_us(moment) == 1_795_341_659_999_999
    assert from_epoch_us(to_epoch_us(moment)) == moment


def test_good_reading_becomes_a_row():
    valid, errors = decode(
        dict(
            GOOD,
            energyKwh=0.0435,
            voltage=235.6,
            current=22.2,
            frequency=50.01,
            powerFactor=0.95,
            temperature=-3.5,
        )
    )
    assert errors == []
    [(index, item)] = valid
    assert index == 0
    assert to_row(item) == [
        "MTR-00000042",
        "Mumbai-North",
        "a3f5e7b9-1234-5678-90ab-cdef12345678",
        NOW_US - 60 * MICRO,
        5_234_000,
        43_500,
        235_600_000,
        22_200_000,
        50_010_000,
        950_000,
        -3_500_000,
    ]


def test_absent_optionals_are_none_and_zero_power_is_a_reading():
    [(_, item)] = decode(dict(GOOD, powerKw=0))[0]
    assert to_row(item)[4:] == [0, None, None, None, None, None, None]


def test_seed_extra_fields_are_ignored():
    seed = dict(
        GOOD,
        userId="USR-00000021",
        seq=1523,
        status="OK",
        metadata={"mode": "normal", "baseLoad": 4.5},
        energyKwh=0.0435,
        voltage=235.6,
    )
    valid, errors = decode(seed)
    assert errors == []
    assert to_row(valid[0][1]) == to_row(
        decode(dict(GOOD, energyKwh=0.0435, voltage=235.6))[0][0][1]
    )


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        (dict(GOOD, powerKw=-1), "powerKw", "Expected `float` >= 0.0"),
        ({k: v for k, v in GOOD.items() if k != "meterId"}, "meterId", "is required"),
        (5, "reading", "Expected `object`, got `int`"),
        (
            dict(GOOD, timestamp="2026-01-01T11:59:00"),
            "timestamp",
            "Expected `datetime` with a timezone component",
        ),
        (dict(GOOD, timestamp="yesterday"), "timestamp", "Invalid RFC3339 encoded datetime"),
        (dict(GOOD, powerFactor=1.5), "powerFactor", "Expected `float` <= 1.0"),
        (dict(GOOD, meterId=""), "meterId", ID_RULE),
        (dict(GOOD, readingId=""), "readingId", ID_RULE),
        (dict(GOOD, powerKw="5"), "powerKw", "Expected `float`, got `str`"),
        (dict(GOOD, energyKwh=-0.1), "energyKwh", "Expected `float` >= 0.0"),
        # The default plausibility bounds (segs.domain.readings.ReadingLimits).
        (dict(GOOD, powerKw=1000.001), "powerKw", "Expected `float` <= 1000.0"),
        (dict(GOOD, energyKwh=100_000.5), "energyKwh", "Expected `float` <= 100000.0"),
        (dict(GOOD, voltage=1001), "voltage", "Expected `float` <= 1000.0"),
        (dict(GOOD, current=10_001), "current", "Expected `float` <= 10000.0"),
        (dict(GOOD, frequency=101), "frequency", "Expected `float` <= 100.0"),
        (dict(GOOD, temperature=-274), "temperature", "Expected `float` >= -273.15"),
    ],
)
def test_decode_errors_name_index_field_and_reason(item, field, message):
    assert only_error(item) == ReadingError(0, field, message)


@pytest.mark.parametrize(
    "meter_id",
    [
        "a\x00b",
        "MTR-1\n",
        "a\rb",
        "a/b/c",
        '=HYPERLINK("http://x","y")',
        "+1",
        "-1",
        "@SUM(A1)",
        "<script>alert(1)</script>",
        "x" * 129,
        "é",
        " MTR-1",
    ],
)
def test_meter_and_reading_ids_follow_the_one_id_rule(meter_id):
    assert only_error(dict(GOOD, meterId=meter_id)) == ReadingError(0, "meterId", ID_RULE)
    assert only_error(dict(GOOD, readingId=meter_id)) == ReadingError(0, "readingId", ID_RULE)


def test_ids_up_to_the_limit_with_every_allowed_character_pass():
    longest = "M" + "a9._:-" * 21 + "x"
    assert len(longest) == 128
    valid, errors = decode(dict(GOOD, meterId=longest, readingId="0"))
    assert errors == []
    assert valid[0][1].meter_id == longest


def test_the_bounds_are_configurable_and_inclusive():
    codec = ReadingCodec(ReadingLimits(max_power_kw=50.0, max_voltage_v=250.0), max_items=10)
    body = json.dumps([dict(GOOD, powerKw=50.0, voltage=250.0), dict(GOOD, powerKw=50.01)])
    batch = codec.decode_batch(body.encode())
    assert [index for index, _ in batch.readings] == [0]
    assert batch.errors == [ReadingError(1, "powerKw", "Expected `float` <= 50.0")]


def test_no_bound_may_exceed_the_hard_maximum():
    assert ReadingLimits().out_of_range() == []
    assert ReadingLimits(max_power_kw=HARD_MAX_QUANTITY).out_of_range() == []
    assert ReadingLimits(max_power_kw=HARD_MAX_QUANTITY * 2, max_current_a=0).out_of_range() == [
        "max_power_kw",
        "max_current_a",
    ]


DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'[{"metadata": ' + b"[" * DEEP + b"]" * DEEP + b"}]",
        b"[" * DEEP,
        b'{"a": ' * DEEP,
    ],
)
def test_json_of_any_depth_is_a_bad_body_not_a_crash(body):
    with pytest.raises(BodyShapeError, match="body must be a JSON"):
        CODEC.decode_batch(body)
    with pytest.raises(BodyShapeError, match="body must be a JSON"):
        CODEC.decode_single(body)


def test_decode_keeps_each_items_index():
    valid, errors = decode(GOOD, dict(GOOD, powerKw=-1), "x", dict(GOOD, meterId="m2"))
    assert [index for index, _ in valid] == [0, 3]
    assert [error.as_dict() for error in errors] == [
        {"index": 1, "field": "powerKw", "message": "Expected `float` >= 0.0"},
        {"index": 2, "field": "reading", "message": "Expected `object`, got `str`"},
    ]


def test_offset_timestamp_is_the_same_instant_as_utc():
    [(_, z)] = decode(dict(GOOD, timestamp="2026-01-01T00:00:00Z"))[0]
    [(_, ist)] = decode(dict(GOOD, timestamp="2026-01-01T05:30:00+05:30"))[0]
    [(_, west)] = decode(dict(GOOD, timestamp="2025-12-31T19:00:00-05:00"))[0]
    assert to_epoch_us(z.timestamp) == to_epoch_us(ist.timestamp) == to_epoch_us(west.timestamp)
    assert to_row(z)[3] == to_row(ist)[3] == 1_767_225_600 * MICRO


def test_microsecond_timestamps_are_exact():
    [(_, item)] = decode(dict(GOOD, timestamp="2026-01-01T11:59:59.999999Z"))[0]
    assert to_row(item)[3] == NOW_US - 1


BOUNDS = TimeBounds.around(NOW, max_age_s=3600, max_skew_s=300)
REGIONS = frozenset({"Mumbai-North"})


def checked(ts_us, region="Mumbai-North"):
    row = ["m", region, "r", ts_us, 1, None, None, None, None, None, None]
    return check_row(4, row, known_regions=REGIONS, bounds=BOUNDS)


def test_time_bounds():
    assert BOUNDS == TimeBounds(
        oldest_us=NOW_US - 3600 * MICRO,
        newest_us=NOW_US + 300 * MICRO,
        max_age_s=3600,
        max_skew_s=300,
    )


def test_check_row_accepts_the_bounds_themselves():
    assert checked(NOW_US) is None
    assert checked(NOW_US + 300 * MICRO) is None
    assert checked(NOW_US - 3600 * MICRO) is None


def test_check_row_unknown_region():
    assert checked(NOW_US, region="Atlantis") == ReadingError(
        4, "region", "unknown region 'Atlantis'"
    )


def test_check_row_too_far_in_the_future():
    assert checked(NOW_US + 300 * MICRO + 1) == ReadingError(
        4, "timestamp", "is more than 300 s in the future"
    )


def test_check_row_too_old():
    assert checked(NOW_US - 3600 * MICRO - 1) == ReadingError(
        4, "timestamp", "is older than the maximum age of 3600 s"
    )


def test_split_batch_returns_raw_items():
    items = split_batch(b'[{"a": 1}, 2, "x"]', max_items=3)
    assert [bytes(item) for item in items] == [b'{"a": 1}', b"2", b'"x"']


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"meterId": "m"}', b"[1, 2", b"", b"null"],
)
def test_split_batch_rejects_bodies_that_are_not_arrays(body):
    with pytest.raises(BodyShapeError):
        split_batch(body, max_items=1000)


def test_split_batch_rejects_an_empty_array():
    with pytest.raises(BodyShapeError, match="between 1 and 1000 readings"):
        split_batch(b"[]", max_items=1000)


def test_split_batch_size_limit():
    assert len(split_batch(json.dumps([{}] * 1000).encode(), max_items=1000)) == 1000
    with pytest.raises(BatchTooLargeError, match="at most 1000 readings, got 1001"):
        split_batch(json.dumps([{}] * 1001).encode(), max_items=1000)


def test_single_as_batch():
    assert [bytes(item) for item in single_as_batch(b' {"a": 1}')] == [b'{"a": 1}']
    for body in (b"[{}]", b"3", b"nope"):
        with pytest.raises(BodyShapeError):
            single_as_batch(body)


def test_decode_batch_of_valid_readings_in_one_pass():
    batch = CODEC.decode_batch(json.dumps([GOOD, dict(GOOD, meterId="m2")]).encode())
    assert batch.size == 2
    assert batch.errors == []
    assert [(index, reading.meter_id) for index, reading in batch.readings] == [
        (0, "MTR-00000042"),
        (1, "m2"),
    ]


def test_decode_batch_with_a_bad_reading_judges_each_item():
    items = [GOOD, dict(GOOD, powerKw=-1), "x", dict(GOOD, meterId="m2")]
    batch = CODEC.decode_batch(json.dumps(items).encode())
    valid, errors = decode(*items)
    assert batch.size == 4
    assert batch.errors == errors
    assert [index for index, _ in batch.readings] == [index for index, _ in valid] == [0, 3]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[]", BodyShapeError),
        (b"{}", BodyShapeError),
        (b"[", BodyShapeError),
        (json.dumps([GOOD] * 11).encode(), BatchTooLargeError),
        (json.dumps(["x"] * 11).encode(), BatchTooLargeError),
    ],
)
def test_decode_batch_shape_and_size(body, error):
    with pytest.raises(error):
        CODEC.decode_batch(body)


def test_decode_single():
    batch = CODEC.decode_single(json.dumps(GOOD).encode())
    assert (batch.size, batch.errors, len(batch.readings)) == (1, [], 1)
    with pytest.raises(BodyShapeError):
        CODEC.decode_single(json.dumps([GOOD]).encode())
