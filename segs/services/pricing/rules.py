"""A region's pricing rules: reading them as the engine does, and an admin changing them.

A change is checked by building the rules the engine will read, so a region can never hold a
rule the engine would refuse.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from segs.domain import tariffs as rules_domain
from segs.domain.tariffs import PricingRules
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Region
from segs.services.accounts import Actor
from segs.services.accounts import record_audit

RULE_FIELDS = (
    "base_price_per_kwh",
    "load_bands",
    "tou_schedule",
    "tou_multipliers",
    "demand_charge_per_kw",
)


def pricing_rules(region: Region) -> PricingRules:
    return PricingRules(
        region.name,
        region.timezone,
        region.base_price_per_kwh,
        rules_domain.parse_load_bands(region.load_bands),
        rules_domain.parse_tou(region.tou_schedule, region.tou_multipliers),
    )


def get_region(session: Session, name: str) -> Region:
    region = session.get(Region, name)
    if region is None:
        raise NotFoundError(f"region {name} not found")
    return region


def update_rules(
    session: Session, actor: Actor, region_name: str, changes: dict[str, Any]
) -> Region:
    """Change a region's pricing rules; they are checked as the engine will read them."""
    region = get_region(session, region_name)
    before = {name: _jsonable(getattr(region, name)) for name in RULE_FIELDS}
    for name in RULE_FIELDS:
        if name in changes:
            setattr(region, name, changes[name])
    try:
        pricing_rules(region)
    except rules_domain.TariffRuleError as exc:
        field_name = str(exc).split(":")[0]
        raise InvalidInputError(str(exc), {field_name: [str(exc)]}) from exc
    session.flush()
    session.refresh(region)
    after = {name: _jsonable(getattr(region, name)) for name in RULE_FIELDS}
    record_audit(
        session, actor, "tariff_rules.update", "region", region.name, {"from": before, "to": after}
    )
    return region


def _jsonable(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value
