"""The SQL of the meter reads (segs.services.grid.readings_query): stored readings, history
buckets in a local time zone, and totals over windows.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

_SUMMED = (
    "coalesce(sum(reading_count), 0)::int, coalesce(sum(power_sum_kw), 0), min(min_power_kw), "
    "max(max_power_kw), coalesce(sum(energy_kwh_sum), 0), coalesce(sum(voltage_sum), 0), "
    "coalesce(sum(voltage_count), 0)::int"
)
# :owned is the time the caller may read (segs.services.accounts.access.readable_meter).
_IN_RANGE = (
    "meter_id = :meter_id AND window_start >= :start AND window_start < :end "
    "AND CAST(:owned AS tstzmultirange) @> window_start"
)

# A bucket row has the fields of readings_query.Bucket: bucket_start, bucket_end, reading_count,
# energy_kwh, avg_power_kw, min_power_kw, max_power_kw, voltage_avg. The stored windows (1m, 15m)
# are read through their (meter_id, window_start) key, with the means the flush stored:
# round(sum / count, 6).
_WINDOW_BUCKETS = {
    size: (
        "SELECT window_start AS bucket_start, "  # noqa: S608 - fixed names, no input
        f"window_start + interval '{length}' AS bucket_end, reading_count, "
        "energy_kwh_sum AS energy_kwh, avg_power_kw, min_power_kw, max_power_kw, voltage_avg "
        f"FROM aggregates_{size} WHERE {_IN_RANGE}"
    )
    for size, length in (("1m", "1 minute"), ("15m", "15 minutes"))
}
# Local hours, days and months sum the 15-minute windows. date_trunc with a zone keeps the two
# hours of a fall-back night apart and starts Asia/Kolkata's hours at hh:30 UTC; a bucket ends
# where the bucket after it starts (a step into the next bucket, truncated again). The means are
# rounded like the flush's and segs.domain.rollups.mean: half away from zero, 6 places.
_LOCAL_BUCKETS = (
    "SELECT bucket_start, "  # noqa: S608 - fixed names, no input
    "date_trunc(:unit, bucket_start + :step, :zone) AS bucket_end, "
    "reading_count, energy_kwh, round(power_sum_kw / reading_count, 6) AS avg_power_kw, "
    "min_power_kw, max_power_kw, "
    "round(voltage_sum / nullif(voltage_count, 0), 6) AS voltage_avg "
    "FROM (SELECT date_trunc(:unit, window_start, :zone) AS bucket_start, "
    "sum(reading_count) AS reading_count, sum(power_sum_kw) AS power_sum_kw, "
    "min(min_power_kw) AS min_power_kw, max(max_power_kw) AS max_power_kw, "
    "sum(energy_kwh_sum) AS energy_kwh, sum(voltage_sum) AS voltage_sum, "
    "sum(voltage_count) AS voltage_count "
    f"FROM aggregates_15m WHERE {_IN_RANGE} GROUP BY 1) AS b"
)
# unit and a step that lands inside the next bucket, for the local resolutions.
LOCAL_UNITS = {
    "1h": ("hour", timedelta(hours=1)),
    "1d": ("day", timedelta(hours=25)),
    "month": ("month", timedelta(days=32)),
}
# The buckets as one JSON array's items, written by PostgreSQL. A day of 1-minute points is
# 1,440 objects; building them in Python (Decimal and datetime objects, then JSON) took about
# three times as long. to_json prints an instant in the session's TimeZone with its offset,
# exactly as datetime.isoformat() does; numbers print with their stored digits.
POINT_JSON = (
    '{"windowStart":%s,"windowEnd":%s,"readingCount":%s,"energyKwh":%s,"avgPowerKw":%s,'
    '"minPowerKw":%s,"maxPowerKw":%s,"voltageAvg":%s}'
)
_POINTS_JSON = (
    "SELECT coalesce(string_agg(format(:point, to_json(bucket_start), to_json(bucket_end), "
    "reading_count, energy_kwh, avg_power_kw, min_power_kw, max_power_kw, "
    "coalesce(voltage_avg::text, 'null')), ',' ORDER BY bucket_start), '') FROM ({rows}) AS p"
)
SET_ZONE = text("SELECT set_config('TimeZone', :zone, true)")
PERIOD_TOTALS_SQL = text(f"SELECT {_SUMMED} FROM aggregates_15m WHERE {_IN_RANGE}")  # noqa: S608


def _bucket_rows(kind: str) -> str:
    return _WINDOW_BUCKETS[kind] if kind in _WINDOW_BUCKETS else _LOCAL_BUCKETS


def history_sql(kind: str) -> str:
    """The query for the bucket rows of *kind* (1m, 15m, 1h, 1d or month), oldest first."""
    return f"{_bucket_rows(kind)} ORDER BY bucket_start"


def history_json_sql(kind: str) -> str:
    """The query for the same buckets as JSON array items (the :point parameter is POINT_JSON)."""
    return _POINTS_JSON.format(rows=_bucket_rows(kind))


_READING_COLUMNS = (
    "ts, reading_id, power_kw, energy_kwh, voltage, current, frequency, power_factor, "
    "temperature, received_at"
)
LATEST_SQL = text(
    f"SELECT {_READING_COLUMNS} FROM raw_readings "  # noqa: S608
    "WHERE meter_id = :meter_id AND CAST(:owned AS tstzmultirange) @> ts "
    "ORDER BY ts DESC LIMIT 1"
)
OWNED_LATEST_SQL = text(
    f"SELECT m.meter_id, m.region, r.* FROM meters m "  # noqa: S608
    f"LEFT JOIN LATERAL (SELECT {_READING_COLUMNS} FROM raw_readings "
    "WHERE meter_id = m.meter_id AND ts >= (SELECT max(o.assigned_from) FROM meter_assignments o "
    "WHERE o.meter_id = m.meter_id AND o.user_id = :owner_id) "
    "ORDER BY ts DESC LIMIT 1) r ON true "
    "WHERE m.owner_id = :owner_id ORDER BY m.meter_id LIMIT :limit OFFSET :offset"
)
OWNED_COUNT_SQL = text("SELECT count(*) FROM meters WHERE owner_id = :owner_id")
