"""Bucket arithmetic in local time zones, local calendar ranges, exact means and comparisons."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segs.domain.rollups import EnergyChange
from segs.domain.rollups import WindowTotals
from segs.domain.rollups import add_months
from segs.domain.rollups import bucket_start
from segs.domain.rollups import compare_energy
from segs.domain.rollups import covering_range
from segs.domain.rollups import day_range
from segs.domain.rollups import local_midnight
from segs.domain.rollups import mean
from segs.domain.rollups import month_range
from segs.domain.rollups import months_between
from segs.domain.rollups import next_bucket_start
from segs.domain.rollups import range_problem

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")


def z(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DDTHH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "resolution", "start"),
    [
        ("2026-03-29T00:59:59", "1m", "2026-03-29T00:59:00"),
        ("2026-03-29T00:59:59", "15m", "2026-03-29T00:45:00"),
        ("2026-03-29T01:00:00", "15m", "2026-03-29T01:00:00"),
    ],
)
def test_stored_windows_are_aligned_to_utc_whatever_the_zone(
    moment: str, resolution: str, start: str
) -> None:
    for zone in (BERLIN, KOLKATA):
        assert bucket_start(z(moment), resolution, zone) == z(start)


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        # Spring forward: 02:00 CET does not exist, 01:00 UTC is 03:00 CEST.
        ("2026-03-29T00:59:00", "2026-03-29T00:00:00", "2026-03-29T01:00:00"),
        ("2026-03-29T01:00:00", "2026-03-29T01:00:00", "2026-03-29T02:00:00"),
        # Fall back: 02:00-03:00 local happens twice, first in CEST then in CET.
        ("2026-10-25T00:30:00", "2026-10-25T00:00:00", "2026-10-25T01:00:00"),
        ("2026-10-25T01:30:00", "2026-10-25T01:00:00", "2026-10-25T02:00:00"),
    ],
)
def test_hours_in_berlin_across_dst(moment: str, start: str, end: str) -> None:
    first = bucket_start(z(moment), "1h", BERLIN)
    assert first == z(start)
    assert next_bucket_start(first, "1h", BERLIN) == z(end)


def test_fall_back_hours_are_two_buckets_with_the_same_wall_clock() -> None:
    first = bucket_start(z("2026-10-25T00:30:00"), "1h", BERLIN).astimezone(BERLIN)
    second = bucket_start(z("2026-10-25T01:30:00"), "1h", BERLIN).astimezone(BERLIN)
    assert first.isoformat() == "2026-10-25T02:00:00+02:00"
    assert second.isoformat() == "2026-10-25T02:00:00+01:00"


@pytest.mark.parametrize(
    ("moment", "start"),
    [
        ("2026-01-15T05:29:00", "2026-01-15T04:30:00"),
        ("2026-01-15T05:30:00", "2026-01-15T05:30:00"),
        ("2026-01-15T06:15:00", "2026-01-15T05:30:00"),
    ],
)
def test_kolkata_hours_start_at_half_past_utc(moment: str, start: str) -> None:
    assert bucket_start(z(moment), "1h", KOLKATA) == z(start)


@pytest.mark.parametrize(
    ("zone", "moment", "start", "end", "hours"),
    [
        (BERLIN, "2026-03-29T12:00", "2026-03-28T23:00", "2026-03-29T22:00", 23),
        (BERLIN, "2026-10-25T12:00", "2026-10-24T22:00", "2026-10-25T23:00", 25),
        (BERLIN, "2026-03-28T23:30", "2026-03-28T23:00", "2026-03-29T22:00", 23),
        (NEW_YORK, "2026-03-08T12:00", "2026-03-08T05:00", "2026-03-09T04:00", 23),
        (NEW_YORK, "2026-11-01T12:00", "2026-11-01T04:00", "2026-11-02T05:00", 25),
        (KOLKATA, "2026-01-01T18:29", "2025-12-31T18:30", "2026-01-01T18:30", 24),
        (KOLKATA, "2026-01-01T18:30", "2026-01-01T18:30", "2026-01-02T18:30", 24),
    ],
)
def test_days_are_local_calendar_days(
    zone: ZoneInfo, moment: str, start: str, end: str, hours: int
) -> None:
    first = bucket_start(z(moment), "1d", zone)
    last = next_bucket_start(first, "1d", zone)
    assert (first, last) == (z(start), z(end))
    assert last - first == timedelta(hours=hours)


def test_covering_range_widens_to_whole_buckets() -> None:
    assert covering_range(z("2026-03-29T10:00"), z("2026-03-29T12:00"), "1d", BERLIN) == (
        z("2026-03-28T23:00"),
        z("2026-03-29T22:00"),
    )
    # An end already on a bucket boundary stays.
    assert covering_range(z("2026-01-15T05:40"), z("2026-01-15T06:30"), "1h", KOLKATA) == (
        z("2026-01-15T05:30"),
        z("2026-01-15T06:30"),
    )
    assert covering_range(z("2026-01-15T05:40:10"), z("2026-01-15T05:44:01"), "1m", UTC) == (
        z("2026-01-15T05:40"),
        z("2026-01-15T05:45"),
    )


def test_local_day_and_month_ranges() -> None:
    assert day_range(date(2026, 3, 29), date(2026, 3, 29), BERLIN) == (
        z("2026-03-28T23:00"),
        z("2026-03-29T22:00"),
    )
    assert day_range(date(2026, 1, 1), date(2026, 1, 2), KOLKATA) == (
        z("2025-12-31T18:30"),
        z("2026-01-02T18:30"),
    )
    # The end month is included: October runs to midnight CET of 1 November.
    assert month_range(date(2026, 9, 1), date(2026, 10, 1), BERLIN) == (
        z("2026-08-31T22:00"),
        z("2026-10-31T23:00"),
    )
    assert local_midnight(date(2026, 11, 1), NEW_YORK) == z("2026-11-01T04:00")


def test_month_arithmetic() -> None:
    assert add_months(date(2026, 11, 17), 2) == date(2027, 1, 1)
    assert add_months(date(2026, 11, 1), -11) == date(2025, 12, 1)
    assert months_between(date(2025, 12, 1), date(2026, 11, 1)) == 12
    assert months_between(date(2026, 3, 1), date(2026, 3, 1)) == 1


def test_range_problems() -> None:
    week = timedelta(days=7)
    assert range_problem(z("2026-01-01T00:00"), z("2026-01-08T00:00"), week) is None
    assert range_problem(z("2026-01-01T00:00"), z("2026-01-01T00:00"), week) == (
        "must be later than the start"
    )
    assert range_problem(z("2026-01-01T00:00"), z("2026-01-08T00:01"), week) == (
        "the range may cover at most 7 days"
    )


def test_means_divide_totals_and_round_half_away_from_zero() -> None:
    assert mean(Decimal("10.000001"), 3) == Decimal("3.333334")
    assert mean(Decimal("0.000001"), 2) == Decimal("0.000001")
    assert mean(Decimal("0.000003"), 2) == Decimal("0.000002")
    assert mean(Decimal("5"), 0) is None


def test_totals_derive_means_from_sums_not_from_means() -> None:
    # Windows of [1, 2] and [4]: the mean of the readings is 7/3, not the mean of means 2.75.
    totals = WindowTotals(
        reading_count=3,
        power_sum_kw=Decimal("7.000000"),
        min_power_kw=Decimal("1.000000"),
        max_power_kw=Decimal("4.000000"),
        energy_kwh=Decimal("0.500000"),
        voltage_sum=Decimal("460.000000"),
        voltage_count=2,
    )
    assert totals.avg_power_kw == Decimal("2.333333")
    assert totals.voltage_avg == Decimal("230.000000")
    empty = WindowTotals(0, Decimal(0), None, None, Decimal(0), Decimal(0), 0)
    assert empty.avg_power_kw is None
    assert empty.voltage_avg is None


@pytest.mark.parametrize(
    ("first", "second", "change"),
    [
        ("10.000000", "12.500000", EnergyChange(Decimal("2.500000"), Decimal("25.00"))),
        ("3.000000", "2.000000", EnergyChange(Decimal("-1.000000"), Decimal("-33.33"))),
        ("3.000000", "4.000000", EnergyChange(Decimal("1.000000"), Decimal("33.33"))),
        ("0.000000", "5.000000", EnergyChange(Decimal("5.000000"), None)),
        ("0", "0", EnergyChange(Decimal("0"), None)),
    ],
)
def test_compare_energy(first: str, second: str, change: EnergyChange) -> None:
    assert compare_energy(Decimal(first), Decimal(second)) == change


ZONES = st.sampled_from(
    [BERLIN, NEW_YORK, KOLKATA, ZoneInfo("Australia/Adelaide"), ZoneInfo("Asia/Kathmandu"), UTC]
)
INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@given(moment=INSTANTS, zone=ZONES, resolution=st.sampled_from(["1m", "15m", "1h", "1d"]))
def test_every_instant_lies_in_exactly_one_bucket(
    moment: datetime, zone: ZoneInfo, resolution: str
) -> None:
    start = bucket_start(moment, resolution, zone)
    end = next_bucket_start(start, resolution, zone)
    assert start <= moment < end
    assert bucket_start(start, resolution, zone) == start
    assert bucket_start(end, resolution, zone) == end
    if resolution in ("1h", "1d"):
        # Local buckets are whole 15-minute windows, so they can roll up 15m rows.
        assert bucket_start(start, "15m", zone) == start
        assert bucket_start(end, "15m", zone) == end
