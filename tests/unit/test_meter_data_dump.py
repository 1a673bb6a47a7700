"""The hand-built history body and CSV agree with HistorySchema, field for field."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Flask

from segs.services.readings_query import History
from segs.services.readings_query import HistoryPoint
from segs.web.json_provider import SegsJSONProvider
from segs.web.meter_data.schemas import HistorySchema
from segs.web.meter_data.schemas import history_body
from segs.web.meter_data.schemas import history_csv

BERLIN = ZoneInfo("Europe/Berlin")


def _history() -> History:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).astimezone(BERLIN)

    return History(
        meter_id="m-1",
        resolution="1h",
        timezone="Europe/Berlin",
        start=at("2026-10-25T02:00:00+02:00"),
        end=at("2026-10-25T03:00:00+01:00"),
        points=[
            HistoryPoint(
                at("2026-10-25T02:00:00+02:00"),
                at("2026-10-25T02:00:00+01:00"),
                3,
                Decimal("0.300000"),
                Decimal("2.333333"),
                Decimal("1.000000"),
                Decimal("4.000000"),
                Decimal("230.100000"),
            ),
            HistoryPoint(
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


def _as_json(value: object) -> object:
    provider = SegsJSONProvider(Flask(__name__))
    return json.loads(provider.dumps(value), parse_float=Decimal)


def test_history_body_is_what_the_schema_dumps() -> None:
    history = _history()
    body = _as_json(history_body(history))
    assert body == _as_json(HistorySchema().dump(history))
    assert body["points"][0]["windowEnd"] == "2026-10-25T02:00:00+01:00"
    assert body["points"][0]["avgPowerKw"] == Decimal("2.333333")
    assert body["points"][1]["voltageAvg"] is None


def test_history_csv() -> None:
    assert history_csv(_history()).splitlines() == [
        "window_start,window_end,reading_count,energy_kwh,avg_power_kw,min_power_kw,"
        "max_power_kw,voltage_avg",
        "2026-10-25T02:00:00+02:00,2026-10-25T02:00:00+01:00,3,0.300000,2.333333,1.000000,"
        "4.000000,230.100000",
        "2026-10-25T02:00:00+01:00,2026-10-25T03:00:00+01:00,1,0,5.000000,5,5,",
    ]
