"""Tariff views: prices for everyone, the overview for staff, overrides for admins."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import current_app

from segs.config import Settings
from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.domain.billing import CURRENCY
from segs.errors import InvalidInputError
from segs.models import Region
from segs.models import TariffOverride
from segs.redis_client import get_redis
from segs.services.pricing import history
from segs.services.pricing import overrides
from segs.services.pricing import rules
from segs.services.pricing.estimates import estimate_cost
from segs.services.pricing.price_cache import CurrentPrice
from segs.services.pricing.price_cache import current_price
from segs.services.pricing.repricing import reprice
from segs.tasks.tariffs import announce
from segs.web.actor import current_actor
from segs.web.field_names import answering_with
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import roles_required
from segs.web.tariffs.schemas import TariffCurrentPriceSchema
from segs.web.tariffs.schemas import TariffEstimateArgsSchema
from segs.web.tariffs.schemas import TariffEstimateSchema
from segs.web.tariffs.schemas import TariffHistoryArgsSchema
from segs.web.tariffs.schemas import TariffHistorySchema
from segs.web.tariffs.schemas import TariffOverrideArgsSchema
from segs.web.tariffs.schemas import TariffOverrideCreateSchema
from segs.web.tariffs.schemas import TariffOverridePageSchema
from segs.web.tariffs.schemas import TariffOverrideSchema
from segs.web.tariffs.schemas import TariffOverrideUpdateSchema
from segs.web.tariffs.schemas import TariffOverviewSchema
from segs.web.tariffs.schemas import TariffRegionArgsSchema
from segs.web.tariffs.schemas import TariffRulesSchema

# The override services name the window's end by meaning; requests call it validTo.
API_FIELDS = {"valid_to": "validTo"}

bp = Blueprint(
    "tariffs",
    __name__,
    url_prefix="/tariffs",
    description="Dynamic prices per region (base x load band x time of use, or an admin's "
    "override), their history, cost estimates, the operators' overview and admin overrides.",
)

DEFAULT_HISTORY_SPAN = timedelta(hours=24)


def _settings() -> Settings:
    return current_app.config["SEGS_SETTINGS"]


def _region_of_caller(args: dict[str, Any]) -> str:
    region = args.get("region") or current_account().region
    if region is None:
        raise InvalidInputError(
            "this account has no region; name one", {"region": ["required for this account"]}
        )
    return region


def _current(region: str) -> CurrentPrice:
    with session_scope() as session:
        return current_price(session, get_redis(), region, _settings().tariff_cache_ttl_s)


def _reprice(region: str) -> None:
    """Apply an admin's change at once instead of at the next flush or beat run."""
    reprice(session_scope, get_redis(), _settings(), [region], datetime.now(UTC), announce)


@bp.get("/current")
@roles_required()
@bp.arguments(TariffRegionArgsSchema, location="query")
@bp.response(200, TariffCurrentPriceSchema)
@bp.alt_response(404, response="NOT_FOUND")
def my_current_price(args: dict[str, Any]) -> CurrentPrice:
    """Show the price in force now in the caller's region (or the region named)."""
    return _current(_region_of_caller(args))


@bp.get("/regions/<region>/current")
@roles_required()
@bp.response(200, TariffCurrentPriceSchema)
@bp.alt_response(404, response="NOT_FOUND")
def region_current_price(region: str) -> CurrentPrice:
    """Show a region's price in force now (served from the Redis cache when it has it)."""
    return _current(region)


@bp.get("/regions/<region>/history")
@roles_required()
@bp.arguments(TariffHistoryArgsSchema, location="query")
@bp.response(200, TariffHistorySchema)
@bp.alt_response(404, response="NOT_FOUND")
def region_history(args: dict[str, Any], region: str) -> dict[str, Any]:
    """List the price intervals that overlap a time range (default: the last 24 hours)."""
    end = args.get("end") or datetime.now(UTC)
    start = args.get("start") or end - DEFAULT_HISTORY_SPAN
    with session_scope() as session:
        items = history.history(session, region, start, end)
    return {"region": region, "start": start, "end": end, "items": items}


@bp.get("/estimate")
@roles_required()
@bp.arguments(TariffEstimateArgsSchema, location="query")
@bp.response(200, TariffEstimateSchema)
@bp.alt_response(404, response="NOT_FOUND")
def estimate(args: dict[str, Any]) -> dict[str, Any]:
    """Price a number of kWh at the current price, with tax, as an invoice line would be."""
    found = estimate_cost(
        _current(_region_of_caller(args)), args["kwh"], _settings().billing_tax_rate
    )
    return {**found.__dict__, "currency": CURRENCY}


@bp.get("/overview")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, TariffOverviewSchema)
def overview() -> dict[str, Any]:
    """Every region's price now, and its changes, range and time-weighted average price over
    the last SEGS_TARIFF_OVERVIEW_HOURS hours."""
    settings = _settings()
    now = datetime.now(UTC)
    span = timedelta(hours=settings.tariff_overview_hours)
    with session_scope() as session:
        regions = history.overview(session, get_redis(), now, span, settings.tariff_cache_ttl_s)
    return {"window_start": now - span, "window_end": now, "regions": regions}


@bp.get("/regions/<region>/rules")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, TariffRulesSchema)
@bp.alt_response(404, response="NOT_FOUND")
def region_rules(region: str) -> Region:
    """Show a region's pricing rules: base price, load bands, time-of-use grid, demand rate."""
    with session_scope() as session:
        return rules.get_region(session, region)


@bp.patch("/regions/<region>/rules")
@roles_required(ADMIN)
@bp.arguments(TariffRulesSchema)
@bp.response(200, TariffRulesSchema)
@bp.alt_response(404, response="NOT_FOUND")
def update_region_rules(body: dict[str, Any], region: str) -> Region:
    """Change a region's pricing rules (audited); the engine reprices the region at once."""
    with session_scope() as session:
        updated = rules.update_rules(session, current_actor(), region, body)
    _reprice(updated.name)
    return updated


@bp.get("/overrides")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(TariffOverrideArgsSchema, location="query")
@bp.response(200, TariffOverridePageSchema)
def list_overrides(args: dict[str, Any]) -> dict[str, Any]:
    """List overrides, latest start first (removed ones only with includeRemoved)."""
    with session_scope() as session:
        page = overrides.list_overrides(
            session,
            args.get("region"),
            args["include_removed"],
            page=args["page"],
            page_size=args["page_size"],
        )
    return page_body(page.items, page.total, args)


@bp.post("/overrides")
@roles_required(ADMIN)
@bp.arguments(TariffOverrideCreateSchema)
@bp.response(201, TariffOverrideSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def create_override(body: dict[str, Any]) -> TariffOverride:
    """Fix a region's price over a validity window; it applies at once if valid now."""
    with session_scope() as session, answering_with(API_FIELDS):
        created = overrides.create_override(
            session,
            current_actor(),
            body["region"],
            body["price_per_kwh"],
            body["valid_from"],
            body["valid_to"],
            body["reason"],
            datetime.now(UTC),
        )
    _reprice(created.region)
    return created


@bp.get("/overrides/<int:override_id>")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, TariffOverrideSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_override(override_id: int) -> TariffOverride:
    """Show one override."""
    with session_scope() as session:
        return overrides.get_override(session, override_id)


@bp.patch("/overrides/<int:override_id>")
@roles_required(ADMIN)
@bp.arguments(TariffOverrideUpdateSchema)
@bp.response(200, TariffOverrideSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def update_override(body: dict[str, Any], override_id: int) -> TariffOverride:
    """Change an override's price, window or reason; pricing follows at once."""
    with session_scope() as session, answering_with(API_FIELDS):
        updated = overrides.update_override(
            session, current_actor(), override_id, body, datetime.now(UTC)
        )
    _reprice(updated.region)
    return updated


@bp.delete("/overrides/<int:override_id>")
@roles_required(ADMIN)
@bp.response(204)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def remove_override(override_id: int) -> None:
    """Remove an override (only the override is touched); automatic pricing resumes."""
    with session_scope() as session:
        removed = overrides.remove_override(
            session, current_actor(), override_id, datetime.now(UTC)
        )
    _reprice(removed.region)
