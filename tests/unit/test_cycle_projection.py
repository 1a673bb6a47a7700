"""The current-cycle estimate: pro rata over the hours that have data, and nothing projected
from less than a day of it (it once projected a whole month from one minute)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from segs.domain.billing import EnergyUse
from segs.domain.billing import compute_invoice
from segs.domain.billing import ended_intervals
from segs.domain.billing import month_bounds
from segs.domain.billing import project_cycle
from segs.domain.billing import to_minor

TAX = D("0.18")
# A two-day period, so the numbers stay small: 192 intervals.
START = datetime(2026, 2, 1, tzinfo=UTC)
END = START + timedelta(hours=48)
# October 2026 in London: 745 hours (the clocks go back on the 25th).
OCTOBER = month_bounds("2026-10", ZoneInfo("Europe/London"))


def so_far(kwh: str, *, demand_kw: str | None = None, tax: D = TAX):
    use = EnergyUse(1, "shoulder", D("6.000000"), D(kwh), START)
    rate = None if demand_kw is None else D("50")
    return compute_invoice([use], None if demand_kw is None else D(demand_kw), rate, tax)


def test_energy_is_projected_over_the_covered_and_remaining_hours_half_up():
    amounts = so_far("1.671667")  # 10.030002 INR: 1003 paise, with tax 1184
    assert (amounts.energy_minor, amounts.total_minor) == (1003, 1184)
    now = START + timedelta(hours=36, minutes=5)

    projection = project_cycle(amounts, 96, START, END, now)

    assert (
        projection.method,
        projection.period_intervals,
        projection.elapsed_intervals,
        projection.covered_intervals,
        projection.remaining_intervals,
    ) == ("pro_rata_covered_hours", 192, 144, 96, 48)
    assert (
        projection.period_hours,
        projection.elapsed_hours,
        projection.covered_hours,
        projection.remaining_hours,
        projection.minimum_covered_hours,
    ) == (D("48.00"), D("36.00"), D("24.00"), D("12.00"), D("24.00"))
    # 1003 x (96 + 48) / 96 = 1504.5 -> 1505 (half-up); tax 270.90 -> 271.
    assert (projection.projected_energy_minor, projection.projected_minor) == (1505, 1776)
    assert projection.reason is None


def test_the_demand_charge_is_the_peak_so_far_not_scaled():
    amounts = so_far("1.671667", demand_kw="4.25")  # 4.25 kW x 50 = 212.50
    assert amounts.demand_minor == 21250

    projection = project_cycle(amounts, 96, START, END, START + timedelta(hours=36))

    # 1505 + 21250 = 22755; tax 4095.90 -> 4096.
    assert (projection.projected_energy_minor, projection.projected_minor) == (1505, 26851)


def test_a_meter_new_this_month_is_projected_from_its_own_days():
    """Five days of data at 21 days into October: the pace of those five days, for them and the
    241 hours to come (the elapsed 16 days without the meter stay unbilled)."""
    start, end = OCTOBER
    now = datetime(2026, 10, 21, 23, 0, 30, tzinfo=UTC)
    amounts = so_far("83.333333")  # 500.00 INR

    projection = project_cycle(amounts, 5 * 96, start, end, now)

    assert (projection.period_hours, projection.elapsed_hours, projection.remaining_hours) == (
        D("745.00"),
        D("504.00"),
        D("241.00"),
    )
    # 50000 x (480 + 964) / 480 = 150416.67 -> 150417; tax 27075.06 -> 27075.
    assert (projection.projected_energy_minor, projection.projected_minor) == (150417, 177492)


@pytest.mark.parametrize(
    ("after_start", "covered", "hours"),
    [
        (timedelta(minutes=1), 0, "0.00"),  # one minute into the month
        (timedelta(minutes=16), 1, "0.25"),
        (timedelta(hours=30), 95, "23.75"),
    ],
)
def test_less_than_a_day_of_data_projects_nothing_and_says_why(after_start, covered, hours):
    start, end = OCTOBER
    amounts = so_far("0.166667")  # 1.00 INR so far

    projection = project_cycle(amounts, covered, start, end, start + after_start)

    assert (projection.projected_energy_minor, projection.projected_minor) == (None, None)
    assert projection.reason == (
        f"{hours} h of this period have data; a projection needs at least 24.00 h"
    )
    assert (projection.covered_hours, projection.period_hours) == (D(hours), D("745.00"))


def test_at_the_end_of_the_period_the_projection_is_the_amount_so_far():
    amounts = so_far("100")
    projection = project_cycle(amounts, 150, START, END, END)
    assert (projection.elapsed_intervals, projection.remaining_intervals) == (192, 0)
    assert projection.projected_minor == amounts.total_minor == to_minor(D("708.000000"))


def test_intervals_end_on_the_quarter_hour_and_coverage_must_be_among_them():
    assert ended_intervals(START, START - timedelta(hours=1)) == 0
    assert ended_intervals(START, START + timedelta(minutes=14, seconds=59)) == 0
    assert ended_intervals(START, START + timedelta(minutes=15)) == 1
    with pytest.raises(ValueError, match="among the ended ones"):
        project_cycle(so_far("1"), 2, START, END, START + timedelta(minutes=20))
