"""Meter readings: latest, history (JSON and CSV), stats, daily and monthly totals, comparison.

Any role may call these; a USER reaches only the meters they own or owned, and only the time
they owned them (others answer 404). Local days, hours and months are in ``?timezone=``, by
default the caller's account time zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import TypeVar

from flask import Response
from flask import jsonify

from segs.db import session_scope
from segs.services.grid import query_ranges
from segs.services.grid import readings_query
from segs.web.field_names import answering_with
from segs.web.meter_data.schemas import CompareQueryArgsSchema
from segs.web.meter_data.schemas import ComparisonSchema
from segs.web.meter_data.schemas import DailyQueryArgsSchema
from segs.web.meter_data.schemas import DailyTotalsSchema
from segs.web.meter_data.schemas import HistoryQueryArgsSchema
from segs.web.meter_data.schemas import HistorySchema
from segs.web.meter_data.schemas import MeterLatestPageSchema
from segs.web.meter_data.schemas import MeterLatestSchema
from segs.web.meter_data.schemas import MeterPeriodStatsSchema
from segs.web.meter_data.schemas import MonthlyQueryArgsSchema
from segs.web.meter_data.schemas import MonthlyTotalsSchema
from segs.web.meter_data.schemas import StatsQueryArgsSchema
from segs.web.meter_data.schemas import history_body
from segs.web.meter_data.schemas import history_csv
from segs.web.parsing import Blueprint
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import roles_required

bp = Blueprint(
    "meter_data",
    __name__,
    url_prefix="/meters",
    description="What a meter measured: its latest reading, its history at 1m, 15m, 1h or 1d, "
    "its totals per period, local day and local month. A USER reaches only the meters they own "
    "or owned, for the time they owned them (others answer 404).",
)

T = TypeVar("T")

_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9_.-]")


# The query fields that name what readings_query's errors name by meaning (query_ranges).
_START_END_FIELDS = {query_ranges.RANGE_END: "end"}
_DAILY_FIELDS = {query_ranges.RANGE_START: "startDate", query_ranges.RANGE_END: "endDate"}
_MONTHLY_FIELDS = {query_ranges.RANGE_START: "startMonth", query_ranges.RANGE_END: "endMonth"}
_COMPARE_FIELDS = {query_ranges.PERIOD1_END: "period1End", query_ranges.PERIOD2_END: "period2End"}


@contextmanager
def _answering_in(fields: dict[str, str]) -> Iterator[None]:
    """Answer a refused query argument under the name this endpoint's query gives it."""
    names = {query_ranges.ZONE: "timezone", **fields}
    with answering_with(names):
        try:
            yield
        except query_ranges.QueryArgumentError as error:
            if error.not_before is not None:
                reason = f"must not be before {names[error.not_before]}"
                error.details = {"query": {error.argument: [reason]}}
            raise


def _read(
    read: Callable[..., T],
    fields: dict[str, str],
    meter_id: str,
    args: dict[str, Any],
    **query: Any,
) -> T:
    """Run the readings_query *read* of *meter_id* for the caller, in the zone the query *args*
    name (default: the caller's), answering a refused argument with this endpoint's *fields*."""
    account = current_account()
    zone_name = args.get("timezone") or account.timezone
    with _answering_in(fields), session_scope() as session:
        return read(
            session,
            account_id=account.id,
            role=account.role,
            meter_id=meter_id,
            zone_name=zone_name,
            **query,
        )


def _history(read: Callable[..., T], meter_id: str, args: dict[str, Any]) -> T:
    return _read(
        read,
        _START_END_FIELDS,
        meter_id,
        args,
        resolution=args["resolution"],
        start=args.get("start"),
        end=args.get("end"),
        now=datetime.now(UTC),
    )


@bp.get("/latest")
@roles_required()
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, MeterLatestPageSchema)
def my_latest(args: dict[str, int]) -> dict[str, Any]:
    """List the latest reading of each meter assigned to the caller."""
    with session_scope() as session:
        items, total = readings_query.owned_meters_latest(
            session, current_account().id, page=args["page"], page_size=args["page_size"]
        )
    return page_body(items, total, args)


@bp.get("/<meter_id>/latest")
@roles_required()
@bp.response(200, MeterLatestSchema)
def latest(meter_id: str) -> readings_query.MeterLatest:
    """Show a meter's newest stored reading."""
    account = current_account()
    with session_scope() as session:
        return readings_query.meter_latest(session, account.id, account.role, meter_id)


@bp.get("/<meter_id>/history")
@roles_required()
@bp.arguments(HistoryQueryArgsSchema, location="query")
@bp.response(200, HistorySchema)
def history(args: dict[str, Any], meter_id: str) -> Response:
    """Show a meter's history at 1m, 15m, 1h or 1d resolution (default: the last 24 hours)."""
    found = _history(readings_query.meter_history_json, meter_id, args)
    return jsonify(history_body(found))


@bp.get("/<meter_id>/history.csv")
@roles_required()
@bp.arguments(HistoryQueryArgsSchema, location="query")
@bp.response(
    200,
    {"type": "string"},
    content_type="text/csv",
    description="one row per bucket: window_start, window_end, reading_count, energy_kwh, "
    "avg_power_kw, min_power_kw, max_power_kw, voltage_avg",
)
def history_as_csv(args: dict[str, Any], meter_id: str) -> Response:
    """Export a meter's history as CSV; times carry their UTC offset."""
    found = _history(readings_query.meter_history, meter_id, args)
    covered = found.range
    name = _UNSAFE_IN_FILENAME.sub("_", covered.meter_id)
    filename = f"{name}-{covered.resolution}-{covered.start:%Y%m%dT%H%M}.csv"
    return Response(
        history_csv(found),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/<meter_id>/stats")
@roles_required()
@bp.arguments(StatsQueryArgsSchema, location="query")
@bp.response(200, MeterPeriodStatsSchema)
def stats(args: dict[str, Any], meter_id: str) -> readings_query.MeterStats:
    """Show a meter's energy, mean, lowest and highest power over a period (default: 7 days)."""
    return _read(
        readings_query.meter_stats,
        _START_END_FIELDS,
        meter_id,
        args,
        start=args.get("start"),
        end=args.get("end"),
        now=datetime.now(UTC),
    )


def _calendar(
    meter_id: str, args: dict[str, Any], kind: str, fields: dict[str, str], first: str, last: str
) -> readings_query.Calendar:
    """Totals per local day or month, from the query's *first* to its *last* argument."""
    return _read(
        readings_query.meter_calendar,
        fields,
        meter_id,
        args,
        kind=kind,
        first=args.get(first),
        last=args.get(last),
        now=datetime.now(UTC),
    )


@bp.get("/<meter_id>/daily")
@roles_required()
@bp.arguments(DailyQueryArgsSchema, location="query")
@bp.response(200, DailyTotalsSchema)
def daily(args: dict[str, Any], meter_id: str) -> readings_query.Calendar:
    """Show a meter's totals per local day, end day included (default: the last 30 days)."""
    return _calendar(meter_id, args, "1d", _DAILY_FIELDS, "start_date", "end_date")


@bp.get("/<meter_id>/monthly")
@roles_required()
@bp.arguments(MonthlyQueryArgsSchema, location="query")
@bp.response(200, MonthlyTotalsSchema)
def monthly(args: dict[str, Any], meter_id: str) -> readings_query.Calendar:
    """Show a meter's totals per local month, end month included (default: the last 12)."""
    return _calendar(meter_id, args, "month", _MONTHLY_FIELDS, "start_month", "end_month")


@bp.get("/<meter_id>/compare")
@roles_required()
@bp.arguments(CompareQueryArgsSchema, location="query")
@bp.response(200, ComparisonSchema)
def compare(args: dict[str, Any], meter_id: str) -> readings_query.Comparison:
    """Compare a meter's totals over two periods."""
    return _read(
        readings_query.compare_periods,
        _COMPARE_FIELDS,
        meter_id,
        args,
        period1=(args["period1_start"], args["period1_end"]),
        period2=(args["period2_start"], args["period2_end"]),
    )
