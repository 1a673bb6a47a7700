"""Query arguments and response bodies of the meter reading endpoints."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC
from datetime import date
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from segs.domain.accounts import is_timezone
from segs.domain.rollups import RESOLUTIONS
from segs.services.grid.readings_query import History
from segs.services.grid.readings_query import HistoryJson
from segs.web.schemas import CamelSchema
from segs.web.schemas import page_schema

# A '+' in an unencoded query string arrives as a space: "...T10:00:00 05:30".
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# Far enough for any meter; it keeps every bucket and range arithmetic inside datetime's years.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_IN_YEARS = f"between {EARLIEST.year} and {LATEST.year}"


def _known_zone(name: str) -> None:
    if not is_timezone(name):
        raise ValidationError(f"not an IANA time zone: {name!r}")


def _within_years(value: date) -> None:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValidationError(f"must be {_IN_YEARS}")


class QueryDateTime(fields.AwareDateTime):
    """An ISO-8601 instant with Z or a UTC offset; a time without one is refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            format="iso",
            validate=validate.Range(min=EARLIEST, max=LATEST, error=f"must be {_IN_YEARS}"),
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = _SPACED_OFFSET.sub(r"+\1", value)
        return super()._deserialize(value, attr, data, **kwargs)


class Month(fields.String):
    """A calendar month written YYYY-MM, loaded as the date of its first day."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        match = _MONTH.match(super()._deserialize(value, attr, data, **kwargs))
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValidationError("not a month written YYYY-MM")
        month = date(int(match.group(1)), int(match.group(2)), 1)
        _within_years(month)
        return month


def _timezone_field() -> fields.String:
    return fields.String(
        validate=_known_zone,
        metadata={
            "description": "IANA time zone for local hours, days and months and for the "
            "returned times; default: the caller's account time zone"
        },
    )


def _number(description: str, attribute: str | None = None) -> fields.Decimal:
    return fields.Decimal(
        as_string=False,
        allow_none=True,
        attribute=attribute,
        metadata={"description": description},
    )


# --------------------------------------------------------------------------- query arguments


class HistoryQueryArgsSchema(CamelSchema):
    resolution = fields.String(
        load_default="15m",
        validate=validate.OneOf(RESOLUTIONS),
        metadata={
            "description": "1m and 15m: the stored windows; 1h and 1d: 15-minute windows "
            "summed per local hour or day. Longest range per request: 7, 31, 93, 1096 days"
        },
    )
    start = QueryDateTime(metadata={"description": "ISO-8601 with offset; default end - 24 h"})
    end = QueryDateTime(metadata={"description": "ISO-8601 with offset; default now"})
    timezone = _timezone_field()


class StatsQueryArgsSchema(CamelSchema):
    start = QueryDateTime(metadata={"description": "ISO-8601 with offset; default end - 7 days"})
    end = QueryDateTime(metadata={"description": "ISO-8601 with offset; default now"})
    timezone = _timezone_field()


class DailyQueryArgsSchema(CamelSchema):
    start_date = fields.Date(
        validate=_within_years, metadata={"description": "first local day, YYYY-MM-DD"}
    )
    end_date = fields.Date(
        validate=_within_years,
        metadata={"description": "last local day, included; default today; at most 1096 days"},
    )
    timezone = _timezone_field()


class MonthlyQueryArgsSchema(CamelSchema):
    start_month = Month(metadata={"description": "first local month, YYYY-MM"})
    end_month = Month(
        metadata={"description": "last local month, included; default this month; at most 36"}
    )
    timezone = _timezone_field()


class CompareQueryArgsSchema(CamelSchema):
    period1_start = QueryDateTime(required=True)
    period1_end = QueryDateTime(required=True)
    period2_start = QueryDateTime(required=True)
    period2_end = QueryDateTime(required=True)
    timezone = _timezone_field()


# --------------------------------------------------------------------------- responses


class StoredReadingSchema(CamelSchema):
    timestamp = fields.DateTime(attribute="ts")
    reading_id = fields.String()
    power_kw = _number("kW")
    energy_kwh = _number("kWh")
    voltage = _number("V")
    current = _number("A")
    frequency = _number("Hz")
    power_factor = _number("0 to 1")
    temperature = _number("degrees Celsius")
    received_at = fields.DateTime()


class MeterLatestSchema(CamelSchema):
    meter_id = fields.String()
    region = fields.String()
    reading = fields.Nested(
        StoredReadingSchema,
        allow_none=True,
        metadata={"description": "the newest stored reading; null when none is kept"},
    )


MeterLatestPageSchema = page_schema(MeterLatestSchema, "MeterLatestPage")


class FiguresSchema(CamelSchema):
    """Figures over a set of windows; means are total / count, rounded to 6 places."""

    reading_count = fields.Integer()
    energy_kwh = _number("energy used, kWh")
    avg_power_kw = _number("mean power over the readings, kW; null without readings")
    min_power_kw = _number("lowest reading, kW")
    max_power_kw = _number("highest reading, kW")
    voltage_avg = _number("mean voltage over the readings that carried one, V")


class HistoryPointSchema(FiguresSchema):
    window_start = fields.DateTime(attribute="start")
    window_end = fields.DateTime(attribute="end")


class HistorySchema(CamelSchema):
    meter_id = fields.String(attribute="range.meter_id")
    resolution = fields.String(attribute="range.resolution")
    timezone = fields.String(attribute="range.timezone")
    start = fields.DateTime(
        attribute="range.start", metadata={"description": "the range, widened to whole buckets"}
    )
    end = fields.DateTime(attribute="range.end")
    points = fields.List(
        fields.Nested(HistoryPointSchema),
        metadata={"description": "buckets with readings, oldest first"},
    )


class PeriodTotalsSchema(FiguresSchema):
    start = fields.DateTime(metadata={"description": "widened to whole 15-minute windows"})
    end = fields.DateTime()


class MeterPeriodStatsSchema(CamelSchema):
    meter_id = fields.String()
    period = fields.Nested(PeriodTotalsSchema)


class DayTotalsSchema(FiguresSchema):
    date = fields.Function(
        lambda day: day.start.date().isoformat(),
        metadata={"description": "local day, YYYY-MM-DD"},
    )
    start = fields.DateTime()
    end = fields.DateTime(metadata={"description": "23 or 25 hours after start on DST days"})


class DailyTotalsSchema(CamelSchema):
    meter_id = fields.String()
    timezone = fields.String()
    start_date = fields.String(attribute="first")
    end_date = fields.String(attribute="last")
    days = fields.List(fields.Nested(DayTotalsSchema), attribute="items")


class MonthTotalsSchema(FiguresSchema):
    month = fields.Function(
        lambda month: month.start.strftime("%Y-%m"),
        metadata={"description": "local month, YYYY-MM"},
    )
    start = fields.DateTime()
    end = fields.DateTime()


class MonthlyTotalsSchema(CamelSchema):
    meter_id = fields.String()
    timezone = fields.String()
    start_month = fields.String(attribute="first")
    end_month = fields.String(attribute="last")
    months = fields.List(fields.Nested(MonthTotalsSchema), attribute="items")


class ComparisonSchema(CamelSchema):
    meter_id = fields.String()
    period1 = fields.Nested(PeriodTotalsSchema)
    period2 = fields.Nested(PeriodTotalsSchema)
    change_kwh = fields.Decimal(
        as_string=False,
        attribute="change.change_kwh",
        metadata={"description": "period 2 energy minus period 1 energy"},
    )
    change_percent = fields.Decimal(
        as_string=False,
        allow_none=True,
        attribute="change.change_percent",
        metadata={"description": "100 x change / period 1 energy, 2 places; null if that is 0"},
    )


# --------------------------------------------------------------------------- fast paths


def history_body(history: HistoryJson) -> dict[str, Any]:
    """HistorySchema's output, with the points PostgreSQL already wrote as JSON.

    A day of 1-minute points is 1,440 objects; marshmallow alone takes about 30 ms to dump them.
    tests/integration/test_meter_data.py pins this body to HistorySchema's.
    """
    covered = history.range
    return {
        "meterId": covered.meter_id,
        "resolution": covered.resolution,
        "timezone": covered.timezone,
        "start": covered.start.isoformat(),
        "end": covered.end.isoformat(),
        "points": orjson.Fragment(f"[{history.points_json}]"),
    }


CSV_COLUMNS = (
    "window_start",
    "window_end",
    "reading_count",
    "energy_kwh",
    "avg_power_kw",
    "min_power_kw",
    "max_power_kw",
    "voltage_avg",
)


def _cell(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def history_csv(history: History) -> str:
    """The history as CSV: one row per point, times with their UTC offset, empty for null."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for point in history.points:
        writer.writerow(
            (
                point.start.isoformat(),
                point.end.isoformat(),
                point.reading_count,
                _cell(point.energy_kwh),
                _cell(point.avg_power_kw),
                _cell(point.min_power_kw),
                _cell(point.max_power_kw),
                _cell(point.voltage_avg),
            )
        )
    return out.getvalue()
