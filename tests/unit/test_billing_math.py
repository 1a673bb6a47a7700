"""Billing math: local months across DST, each interval at its own tariff, exact amounts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from segs.domain.billing import EnergyUse
from segs.domain.billing import PeriodError
from segs.domain.billing import TariffInterval
from segs.domain.billing import compute_invoice
from segs.domain.billing import interval_starts
from segs.domain.billing import month_bounds
from segs.domain.billing import period_of
from segs.domain.billing import previous_period
from segs.domain.billing import slot_plan
from segs.domain.billing import to_minor
from segs.domain.tariffs import parse_tou

LONDON = ZoneInfo("Europe/London")
KOLKATA = ZoneInfo("Asia/Kolkata")
GRID = parse_tou(
    {"weekday": "OOOOOOSSSSSSSSSSSPPPPPOO", "weekend": "OOOOOOOSSSSSSSSSSSSSSSSO"},
    {"off_peak": "0.9", "shoulder": "1.0", "peak": "1.2"},
)


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_month_bounds_follow_the_local_clock():
    assert month_bounds("2026-11", KOLKATA) == (
        utc(2026, 10, 31, 18, 30),
        utc(2026, 11, 30, 18, 30),
    )
    # London: BST begins on 29 March, so March is 31 x 24 - 1 hours long; October one hour longer.
    march = month_bounds("2026-03", LONDON)
    assert march == (utc(2026, 3, 1), utc(2026, 3, 31, 23))
    assert len(interval_starts(*march)) == (31 * 24 - 1) * 4
    october = month_bounds("2026-10", LONDON)
    assert october == (utc(2026, 9, 30, 23), utc(2026, 11, 1))
    assert len(interval_starts(*october)) == (31 * 24 + 1) * 4
    assert month_bounds("2026-12", LONDON)[1] == utc(2027, 1, 1)


def test_period_helpers():
    assert period_of(utc(2026, 10, 31, 23, 30), LONDON) == "2026-10"
    assert period_of(utc(2026, 10, 31, 18, 30), KOLKATA) == "2026-11"
    assert previous_period("2026-01") == "2025-12"
    for bad in ("2026-13", "26-01", "2026/01", "abc", "1999-12"):
        with pytest.raises(PeriodError):
            month_bounds(bad, LONDON)


def _day(zone, year, month, day):
    start = datetime(year, month, day, tzinfo=zone).astimezone(UTC)
    end = (datetime(year, month, day, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    return start, end


def test_23_hour_day_has_92_intervals_and_one_off_peak_hour_fewer():
    start, end = _day(LONDON, 2026, 3, 29)  # a Sunday: the weekend grid
    plan = slot_plan([], D("6"), GRID, LONDON, start, end)
    assert end - start == timedelta(hours=23)
    assert len(plan) == 92
    # Local 01:00-01:59 does not exist that day.
    assert Counter(slot.tou_period for slot in plan) == {"off_peak": 7 * 4, "shoulder": 16 * 4}


def test_25_hour_day_has_100_intervals_and_bills_the_repeated_hour_twice():
    start, end = _day(LONDON, 2026, 10, 25)  # a Sunday
    plan = slot_plan([], D("6"), GRID, LONDON, start, end)
    assert end - start == timedelta(hours=25)
    assert len(plan) == 100
    assert Counter(slot.tou_period for slot in plan) == {"off_peak": 9 * 4, "shoulder": 16 * 4}


def test_each_interval_takes_the_tariff_in_effect_when_it_began():
    history = [
        TariffInterval(1, D("5.000000"), utc(2026, 10, 14, 0, 0), utc(2026, 10, 14, 0, 20)),
        TariffInterval(2, D("7.000000"), utc(2026, 10, 14, 0, 20), utc(2026, 10, 14, 0, 45)),
        TariffInterval(3, D("8.000000"), utc(2026, 10, 14, 0, 50), None),
    ]
    plan = slot_plan(
        history, D("6"), GRID, KOLKATA, utc(2026, 10, 13, 23, 45), utc(2026, 10, 14, 1, 15)
    )
    assert [(slot.tariff_id, slot.price) for slot in plan] == [
        (None, D("6")),  # before any history: the base price
        (1, D("5.000000")),  # 00:00, tariff 1 in effect
        (1, D("5.000000")),  # 00:15: tariff 2 only starts at 00:20
        (2, D("7.000000")),  # 00:30
        (None, D("6")),  # 00:45: a gap in history (00:45-00:50) falls back to base
        (3, D("8.000000")),  # 01:00
    ]


def test_rounding_to_the_smallest_unit_is_half_up():
    assert to_minor(D("0.005")) == 1
    assert to_minor(D("0.004999")) == 0
    assert to_minor(D("80.17777152")) == 8018


def test_invoice_amounts_are_exact():
    first = utc(2026, 10, 1)
    uses = [
        EnergyUse(2, "shoulder", D("5.400000"), D("3.5"), first + timedelta(hours=2)),
        EnergyUse(1, "peak", D("7.920000"), D("10.123456"), first),
    ]
    amounts = compute_invoice(uses, D("4.25"), D("50"), D("0.18"))
    assert [(line.kind, line.tariff_id, line.amount_minor) for line in amounts.lines] == [
        ("energy", 1, 8018),  # 10.123456 x 7.92 = 80.17777152
        ("energy", 2, 1890),  # 3.5 x 5.4 = 18.90
        ("demand", None, 21250),  # 4.25 kW x 50 = 212.50
    ]
    assert amounts.energy_kwh == D("13.623456")
    assert (amounts.energy_minor, amounts.demand_minor) == (9908, 21250)
    assert amounts.tax_minor == 5608  # 18 % of 311.58 = 56.0844
    assert amounts.total_minor == 36766
    no_demand = compute_invoice(uses, D("4.25"), None, D("0.18"))
    assert (no_demand.demand_minor, no_demand.tax_minor, no_demand.total_minor) == (0, 1783, 11691)
