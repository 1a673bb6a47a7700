"""The CSV export of a history: one row per bucket, times with their UTC offset."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from segs.services.grid.readings_query import Bucket
from segs.services.grid.readings_query import History
from segs.services.grid.readings_query import HistoryRange
from segs.web.meter_data.schemas import history_csv

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(BERLIN)


def test_history_csv() -> None:
    history = History(
        HistoryRange(
            "m-1",
            "1h",
            BERLIN,
            at("2026-10-25T02:00:00+02:00"),
            at("2026-10-25T03:00:00+01:00"),
            "{(,)}",
        ),
        [
            Bucket(
                at("2026-10-25T02:00:00+02:00"),
                at("2026-10-25T02:00:00+01:00"),
                3,
                Decimal("0.300000"),
                Decimal("2.333333"),
                Decimal("1.000000"),
                Decimal("4.000000"),
                Decimal("230.100000"),
            ),
            Bucket(
                at("2026-10-25T02:00:00+01:00"),
                at("2026-10-25T03:00:00+01:00"),
                1,
                Decimal("0"),
                Decimal("5.000000"),
                Decimal("5"),
                Decimal("5"),
                None,
            ),
        ],
    )

    assert history_csv(history).splitlines() == [
        "window_start,window_end,reading_count,energy_kwh,avg_power_kw,min_power_kw,"
        "max_power_kw,voltage_avg",
        "2026-10-25T02:00:00+02:00,2026-10-25T02:00:00+01:00,3,0.300000,2.333333,1.000000,"
        "4.000000,230.100000",
        "2026-10-25T02:00:00+01:00,2026-10-25T03:00:00+01:00,1,0,5.000000,5,5,",
    ]
