"""Meter read ranges without a database: defaults, limits, and errors named by meaning."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from segs.errors import InvalidInputError
from segs.services.grid.query_ranges import RANGE_END
from segs.services.grid.query_ranges import RANGE_START
from segs.services.grid.query_ranges import ZONE
from segs.services.grid.query_ranges import QueryArgumentError
from segs.services.grid.query_ranges import day_calendar
from segs.services.grid.query_ranges import load_zone
from segs.services.grid.query_ranges import month_calendar
from segs.services.grid.query_ranges import stats_range
from segs.web.field_names import answering_with

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_a_zone_is_an_iana_name_and_never_the_hosts_localtime():
    assert load_zone("Europe/Berlin") == BERLIN
    with pytest.raises(QueryArgumentError) as refused:
        load_zone("localtime")
    assert refused.value.argument == ZONE
    assert refused.value.details == {"query": {ZONE: ["not an IANA time zone: 'localtime'"]}}


def test_calendars_default_to_the_last_30_days_and_12_months_in_the_zone():
    days = day_calendar(None, None, BERLIN, NOW)
    assert (days.first, days.last) == (date(2026, 5, 17), date(2026, 6, 15))
    assert days.start == datetime(2026, 5, 16, 22, 0, tzinfo=UTC)  # local midnight, +02:00
    months = month_calendar(None, None, BERLIN, NOW)
    assert (months.first, months.last) == (date(2025, 7, 1), date(2026, 6, 1))
    assert months.end == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)


def test_a_reversed_or_too_long_range_names_its_end_by_meaning():
    with pytest.raises(QueryArgumentError) as reversed_days:
        day_calendar(date(2026, 6, 2), date(2026, 6, 1), BERLIN, NOW)
    assert (reversed_days.value.argument, reversed_days.value.not_before) == (
        RANGE_END,
        RANGE_START,
    )
    with pytest.raises(QueryArgumentError) as too_many_months:
        month_calendar(date(2023, 1, 1), date(2026, 6, 1), BERLIN, NOW)
    assert too_many_months.value.details == {
        "query": {RANGE_END: ["the range may cover at most 36 months"]}
    }
    with pytest.raises(QueryArgumentError) as empty:
        stats_range(NOW, NOW, NOW)
    assert empty.value.argument == RANGE_END


def test_a_view_answers_with_its_own_field_names():
    with pytest.raises(InvalidInputError) as refused, answering_with({RANGE_END: "endDate"}):
        stats_range(NOW, NOW, NOW)
    assert refused.value.details == {"query": {"endDate": ["must be later than the start"]}}
    assert refused.value.message == "the request is not valid"
