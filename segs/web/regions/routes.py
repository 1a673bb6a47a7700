"""Region views: any account lists the regions; operators and admins read their figures."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.models import Region
from segs.services.grid import query_ranges
from segs.services.grid import regions
from segs.services.grid import regions_query
from segs.web.actor import current_actor
from segs.web.field_names import answering_with
from segs.web.parsing import Blueprint
from segs.web.regions.schemas import RegionCurrentLoadSchema
from segs.web.regions.schemas import RegionPageSchema
from segs.web.regions.schemas import RegionPeriodStatsSchema
from segs.web.regions.schemas import RegionRangeQueryArgsSchema
from segs.web.regions.schemas import RegionSchema
from segs.web.regions.schemas import RegionUpdateSchema
from segs.web.regions.schemas import TopConsumersQueryArgsSchema
from segs.web.regions.schemas import TopConsumersSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_body
from segs.web.security import roles_required

bp = Blueprint(
    "regions",
    __name__,
    url_prefix="/regions",
    description="Grid regions with their capacity and time zone; for operators and admins, "
    "each region's energy, top consumers and current load; for admins, setting a capacity.",
)

# The request's names for the values the region services' errors name by meaning.
API_FIELDS = {"capacity_kw": "capacityKw"}
_RANGE_FIELDS = {query_ranges.RANGE_END: "end"}


@bp.get("")
@roles_required()
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, RegionPageSchema)
def list_regions(args: dict[str, int]) -> dict[str, Any]:
    """List the regions by name."""
    with session_scope() as session:
        regions, total = regions_query.list_regions(
            session, page=args["page"], page_size=args["page_size"]
        )
    return page_body(regions, total, args)


@bp.get("/<region>")
@roles_required()
@bp.response(200, RegionSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_region(region: str) -> Region:
    """Show one region: its time zone and capacity."""
    with session_scope() as session:
        return regions_query.get_region(session, region)


@bp.patch("/<region>")
@roles_required(ADMIN)
@bp.arguments(RegionUpdateSchema)
@bp.response(200, RegionSchema)
@bp.alt_response(404, response="NOT_FOUND")
def update_region(body: dict[str, Any], region: str) -> Region:
    """Set an existing region's capacity (audited); windows flushed from now on use it.

    Regions are not created here: an unknown region is a 404.
    """
    with answering_with(API_FIELDS), session_scope() as session:
        return regions.set_capacity(session, current_actor(), region, body["capacity_kw"]).region


@bp.get("/<region>/stats")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(RegionRangeQueryArgsSchema, location="query")
@bp.response(200, RegionPeriodStatsSchema)
def region_stats(args: dict[str, Any], region: str) -> regions_query.RegionStats:
    """Show a region's energy, active meters and peak load over a period (default: 7 days)."""
    with answering_with(_RANGE_FIELDS), session_scope() as session:
        return regions_query.region_stats(
            session, region, start=args.get("start"), end=args.get("end"), now=datetime.now(UTC)
        )


@bp.get("/<region>/top-consumers")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(TopConsumersQueryArgsSchema, location="query")
@bp.response(200, TopConsumersSchema)
def top_consumers(args: dict[str, Any], region: str) -> regions_query.TopConsumers:
    """Rank a region's meters by energy used over a period (default: 30 days)."""
    with answering_with(_RANGE_FIELDS), session_scope() as session:
        return regions_query.top_consumers(
            session,
            region,
            start=args.get("start"),
            end=args.get("end"),
            limit=args["limit"],
            now=datetime.now(UTC),
        )


@bp.get("/<region>/load")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, RegionCurrentLoadSchema)
def load(region: str) -> regions_query.RegionLoad:
    """Show a region's load in its newest complete 1-minute window."""
    with session_scope() as session:
        return regions_query.region_load(session, region, now=datetime.now(UTC))
